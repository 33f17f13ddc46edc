"""tools/benchmark/recipe_ablation.py: every recipe variant makes a valid
config that changes what it names; one variant runs end to end."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from tests.conftest import COCO128, COCO_TINY, ROOT, needs_coco128, \
    needs_coco_tiny, needs_yolov5n


def _tool():
    spec = importlib.util.spec_from_file_location(
        '_recipe_ablation', osp.join(ROOT, 'tools', 'benchmark',
                                     'recipe_ablation.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_variant_is_a_valid_config(tmp_path):
    from tools._common.experiment import PRESETS, run_cfg
    tool = _tool()
    rows = tool.variants(list(tool.CHANGES), warmup=10)
    assert list(rows)[:2] == ['shipped', 'official']
    for d in ('configs', 'sets'):
        (tmp_path / d).mkdir()
    got = {}
    for name, (_, extra) in rows.items():
        path = run_cfg(PRESETS['toy'], str(tmp_path), 'kd-real', 'w4a8',
                       'fp.pth', '/data/coco128/', extra, name)
        got[name] = Config.fromfile(path)
    ship, off = got['shipped'], got['official']
    assert ship.model.init_checkpoint == off.model.init_checkpoint == \
        'fp.pth'  # the variants' lines update the run's model
    assert ship.model.bn_mode == 'frozen' and off.model.bn_mode == 'train'
    assert off.model.bn_momentum == 0.03
    assert off.model.feat_types == ['Conv2d', 'BatchNorm2d']
    assert off.model.quantizer.a_init_batches == 4
    assert off.model.quantizer.w_bits == 4  # merged, not replaced
    assert off.model.kd_loss.reduction == 'image'
    assert off.model.kd_loss.type == 'mmzsq.YOLOKDLoss'
    assert off.param_scheduler[0].type == 'LinearLR' and \
        off.param_scheduler[0].end == 10
    keys = off.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['.weight'].lr_mult == 1.0 and keys['fake_quant.'].lr_mult
    slow = got['lr1e-5']  # the W6 / W8 recipe on a W4 run
    assert slow.optim_wrapper.paramwise_cfg.custom_keys['.weight'] \
        .lr_mult == 0.1
    assert [s.type for s in slow.param_scheduler] == ['CosineAnnealingLR']
    assert [s.type for s in ship.param_scheduler] == [
        'LinearLR', 'CosineAnnealingLR']  # the shipped W4 warmup
    assert got['bn-reestimate'].custom_hooks[0].type == \
        'mmzsq.BNReestimateHook'
    bf16 = got['bf16'].optim_wrapper
    assert bf16.type == 'mmzsq.CPUAutocastOptimWrapper' and \
        bf16.optimizer == ship.optim_wrapper.optimizer  # merged
    assert ship.train_cfg.synthesis is None  # real data: no Stage I


@needs_yolov5n
@needs_coco_tiny
@needs_coco128
def test_one_variant_end_to_end(tmp_path):
    wd = tmp_path / 'abl'
    r = subprocess.run(
        [sys.executable, 'tools/benchmark/recipe_ablation.py', '--preset',
         'toy', '--iters', '2', '--res', '64', '--num-images', '4',
         '--changes', 'kd-image', '--coco-root', COCO_TINY, '--real-root',
         COCO128, '--work-dir', str(wd)], cwd=ROOT, capture_output=True,
        text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.load(open(wd / 'results.json'))
    for key in ('kd-real:w4a8', 'kd-real:w4a8+kd-image'):
        assert 0 <= res[key]['mAP'] <= res['fp']['mAP'] + 0.02, key
    table = open(wd / 'ablation.md').read()
    assert '| kd-image | KD normalised per image (Eq. 7) | 0.' in table
    with pytest.raises(KeyError):
        _tool().variants(['nope'], 10)
