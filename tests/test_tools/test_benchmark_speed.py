"""The speed tools: tools/benchmark/synthesis_speed.py (our Stage I / II
loops against the bare network) and tools/benchmark/device_run.sh
--dry-run (the GPU machine's pipeline at toy sizes, in this Python)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import COCO_TINY, ROOT, _need

ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
KEYS = ('stage1_img_it_s', 'stage1_floor_img_it_s', 'stage1_over_floor',
        'stage2_img_s', 'stage2_floor_img_s', 'stage2_over_floor')


def speed(*args, timeout=120):
    return subprocess.run(
        [sys.executable, 'tools/benchmark/synthesis_speed.py', *args],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_synthesis_speed_json():
    # Stage I times whole ALS intervals: 2 steps round up to one of 3
    r = speed('--json', '--res', '64', '--batch', '2', '--iters', '2',
              '--warmup', '1', '--checkpoint', 'random', '--device', 'cpu',
              '--flops', '--no-compile', '--cfg-options',
              'train_cfg.synthesis.als.interval=3')
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout[-2000:]  # the logs went to stderr
    res = json.loads(lines[0])
    for k in KEYS:
        assert isinstance(res[k], float) and res[k] > 0, (k, res)
    # the ratios are the rates' quotients, not separate measurements
    assert res['stage1_over_floor'] == pytest.approx(
        res['stage1_img_it_s'] / res['stage1_floor_img_it_s'])
    assert res['stage2_over_floor'] == pytest.approx(
        res['stage2_img_s'] / res['stage2_floor_img_s'])
    assert res['stage1_precision'] == res['stage2_precision'] == 'fp32'
    assert (res['res'], res['batch'], res['threads']) == (64, 2, 1)
    assert (res['iters'], res['stage1_iters']) == (2, 3)
    assert res['compile'] is False
    assert res['stage1_compile'] is res['stage2_compile'] is False
    assert 0 < res['stage1_gflop_per_img_it'] < 10
    assert res['stage1_write_s'] > 0


def test_synthesis_speed_bad_input():
    r = speed('--res', '100')
    assert r.returncode != 0
    assert 'multiple of 32' in r.stderr and 'Traceback' not in r.stderr
    r = speed('--compile', '--warmup', '1')
    assert r.returncode != 0
    assert '--warmup >= 2' in r.stderr and 'Traceback' not in r.stderr
    r = speed('--checkpoint', '/nonexistent.pt', '--stages', '1')
    assert r.returncode != 0 and 'Traceback' not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith('error: ')


def stale_experiment():
    """experiment.set_cfg still writes the pre-ZSQTrainLoop schema."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'benchmark'))
    try:
        from budget_table import writes_train_cfg_synthesis

        from tools._common.experiment import PRESETS
        return not writes_train_cfg_synthesis(PRESETS['toy'])
    finally:
        sys.path.remove(osp.join(ROOT, 'tools', 'benchmark'))


@_need(COCO_TINY)
def test_device_run_dry_run(tmp_path):
    """~45 s on 2 cores: the mmcv shim check, three tiny speed runs, the toy
    preset (W4A8, ZSQ) on 4 val images, the summary."""
    if stale_experiment():
        pytest.skip('tools/_common/experiment.py set_cfg writes Stage I '
                    'settings under train_dataloader.dataset.synthesis; '
                    'ZSQTrainLoop reads train_cfg.synthesis')
    out = tmp_path / 'out'
    r = subprocess.run(
        ['bash', 'tools/benchmark/device_run.sh', '--dry-run', '--out',
         str(out)], cwd=ROOT, env=dict(ENV, PYTHON=sys.executable),
        capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert 'mmcv._ext shim: nms, batched_nms' in r.stdout
    names = sorted(os.listdir(out))
    assert names == ['results.json', 'run.log', 'speed_hi.json',
                     'speed_lo.json', 'speed_s2.json', 'summary.json',
                     'summary.md', 'table.md'], names
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['stage1_img_it_s'] > 0
    assert summary['stage1_gflop_per_img_it'] > 0
    assert summary['preset']['num_images'] == 4
    results = json.loads((out / 'results.json').read_text())
    assert 'zsq:w4a8' in results and 'mAP' in results['zsq:w4a8']
    assert '| **ZSQ (ours)** |' in (out / 'table.md').read_text()


def test_synthesis_speed_stage2_bf16_on_cpu():
    """--amp on a CPU: Stage II (ours, through mmzsq.CPUAutocastOptimWrapper,
    and the floor) in bf16 autocast; Stage I stays fp32 (its autocast is
    CUDA-only).  The wrapper itself: test_cpu_autocast_optim_wrapper.py."""
    r = speed('--json', '--res', '64', '--batch', '2', '--iters', '2',
              '--warmup', '1', '--checkpoint', 'random', '--device', 'cpu',
              '--amp', '--no-compile', '--cfg-options',
              'train_cfg.synthesis.als.interval=2')
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res['stage2_precision'] == 'bf16 autocast'
    assert res['stage1_precision'] == 'fp32'
    assert res['stage2_img_s'] > 0 and res['stage2_floor_img_s'] > 0
