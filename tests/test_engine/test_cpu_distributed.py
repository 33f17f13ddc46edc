"""QAT under tools/dist_train.sh: 2 gloo CPU processes, identical step
sizes on both ranks."""
import os
import random
import subprocess
import sys

import torch

from tests.conftest import ROOT, needs_coco128, needs_yolov5n
from tests.data.qat_configs import small_yolo_cfg


@needs_yolov5n
@needs_coco128
def test_two_process_gloo_qat(yolov5n_mmyolo_ckpt, tmp_path):
    cfg = small_yolo_cfg('configs/zsq/yolov5_n_w4a8.py', tmp_path / 'run',
                         yolov5n_mmyolo_ckpt, res=96, iters=2, n_train=4,
                         batch=1, val=False)
    cfg.custom_imports = dict(imports=['mmzsq', 'tests.data.zsq_hooks'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='DumpQuantStateHook')]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=100)
    cfg_file = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_file))
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1',
               PORT=str(random.randint(20000, 40000)),
               PATH=os.path.dirname(sys.executable) + ':' + os.environ['PATH'])
    out = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(cfg_file), '2', '--work-dir',
         str(tmp_path / 'run')],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    r0 = torch.load(tmp_path / 'run' / 'scales_rank0.pth')
    r1 = torch.load(tmp_path / 'run' / 'scales_rank1.pth')
    assert r0['iter'] == r1['iter'] == 2
    assert len(r0['scales']) == 112 and r0['scales'].keys() == \
        r1['scales'].keys()
    for k, v in r0['scales'].items():
        assert torch.equal(v, r1['scales'][k]), k
    # and they were initialised + learned (not the constructor's 1.0)
    assert all((v != 1.0).all() for v in r0['scales'].values())
