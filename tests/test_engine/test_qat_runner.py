"""QAT through MMEngine: checkpoint round trip via tools/test.py, resume."""
import os
import re
import subprocess
import sys

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmzsq.utils.cli import build_runner
from tests.conftest import ROOT, needs_coco128, needs_coco_tiny, needs_yolov5n
from tests.data.qat_configs import small_yolo_cfg


def _scales(state, prefix='architecture.'):
    return {k: v.clone() for k, v in state.items()
            if k.startswith(prefix) and k.endswith('fake_quant.scale')}


@HOOKS.register_module(force=True)
class _RecordQuantState(Hook):
    """Test hook: the student's step sizes when training (re)starts."""
    seen = {}

    def before_train(self, runner):
        _RecordQuantState.seen = dict(
            iter=runner.iter, scales=_scales(runner.model.state_dict()))


@needs_yolov5n
@needs_coco128
@needs_coco_tiny
def test_w4a8_checkpoint_round_trip_and_resume(yolov5n_mmyolo_ckpt,
                                               tmp_path):
    cfg = small_yolo_cfg('configs/zsq/yolov5_n_w4a8.py', tmp_path / 'run',
                         yolov5n_mmyolo_ckpt, res=128, iters=2, n_val=6)
    runner = build_runner(cfg)
    runner.train()
    trained_map = runner.message_hub.get_scalar(
        'val/coco/bbox_mAP').current()
    ckpt_path = tmp_path / 'run' / 'iter_2.pth'
    state = torch.load(ckpt_path, map_location='cpu',
                       weights_only=False)['state_dict']
    key = 'architecture.backbone.stage1.0.conv.weight_fake_quant.qrange'
    assert state[key].tolist() == [4, -8, 7]
    act = key.replace('weight_fake_quant', 'input_fake_quant')
    assert state[act].tolist() == [8, -128, 127]
    assert state[key.replace('qrange', 'initialized')].item() == 1

    # tools/test.py on the zsq config + checkpoint = the quantized student
    cfg_file = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_file))
    out = subprocess.run(
        [sys.executable, 'tools/test.py', str(cfg_file), str(ckpt_path),
         '--work-dir', str(tmp_path / 'test')],
        cwd=ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.findall(r'coco/bbox_mAP: ([0-9.]+)', out.stdout + out.stderr)
    assert m and abs(float(m[-1]) - trained_map) < 1e-4, (m, trained_map)

    # --resume continues with the same quantizer state
    cfg2 = small_yolo_cfg('configs/zsq/yolov5_n_w4a8.py', tmp_path / 'run',
                          yolov5n_mmyolo_ckpt, res=128, iters=3, val=False)
    cfg2.resume = True  # what tools/train.py --resume sets
    cfg2.load_from = None
    cfg2.custom_hooks = [dict(type='_RecordQuantState')]
    build_runner(cfg2).train()
    seen = _RecordQuantState.seen
    assert seen['iter'] == 2
    saved = _scales(state)
    assert saved.keys() == seen['scales'].keys() and len(saved) == 112
    for k in saved:
        assert torch.equal(saved[k], seen['scales'][k]), k
    assert (tmp_path / 'run' / 'iter_3.pth').exists()
