"""tools/synthesize.py and tools/train.py around Stage I: the CLI, a
refused set as one line, Ctrl-C during Stage I (one line, exit 130, the
rerun resumes)."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, needs_yolov5n
from tests.data.stage_one import hand_set

ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')


@needs_yolov5n
def test_synthesize_cli(yolov5n_mmyolo_ckpt, tmp_path):
    cfg = tmp_path / 'cfg.py'
    set_dir = tmp_path / 'cli_set'
    cfg.write_text(
        f"_base_ = '{ROOT}/configs/synthesis/yolov5_n-v61_coco.py'\n"
        f"train_dataloader = dict(dataset=dict(data_root='{set_dir}/'))\n"
        'train_cfg = dict(synthesis=dict(\n'
        '    num_images=2, batch_size=2, log_interval=1,\n'
        '    stages=[dict(resolution=64, iters=2, label_sampling=True),\n'
        '            dict(resolution=64, iters=1)],\n'
        '    als=dict(interval=1, warmup=1, early_exit=2)))\n')
    env = dict(ENV, MMZSQ_YOLOV5N_MMYOLO=yolov5n_mmyolo_ckpt)
    r = subprocess.run([sys.executable, 'tools/synthesize.py', str(cfg)],
                       cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert 'Stage I batch 0 (1/1) stage 1 step 1/1' in out and 'ETA' in out
    assert f'{set_dir}/: 2 images' in r.stdout
    coco = json.load(open(set_dir / 'annotations.json'))
    assert len(coco['images']) == 2
    # the plain detector got the checkpoint: its hash is the file's weights
    meta = json.load(open(set_dir / 'meta.json'))
    assert meta['teacher_checkpoint'] == yolov5n_mmyolo_ckpt
    # a config without Stage I -> one-line error naming the fix
    bad = tmp_path / 'bad.py'
    bad.write_text(f"_base_ = '{ROOT}/configs/yolov5/yolov5_n-v61_fp_coco."
                   "py'\n")
    r = subprocess.run([sys.executable, 'tools/synthesize.py', str(bad)],
                       cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and 'synthesis=dict' in r.stderr


TINY_ARCH = ("backbone=dict(widen_factor=0.125), "
             "neck=dict(widen_factor=0.125),\n"
             "    bbox_head=dict(head_module=dict(widen_factor=0.125))")
# slow enough that the SIGINT, sent once batch 0 is written, lands in
# Stage I even when the test's polling is starved by a loaded machine
SLOW_SYNTHESIS = (
    "num_images=8, batch_size=1, log_interval=1, amp=False,\n"
    "    channels_last=False, als=None,\n"
    "    stages=[dict(resolution=64, iters=200)]")


def _train_py_cfg(tmp_path, set_dir, synthesis):
    cfg = tmp_path / 'train_cfg.py'
    cfg.write_text(
        f"_base_ = '{ROOT}/configs/zsq/yolov5_n_w8a8.py'\n"
        "model = dict(init_checkpoint=None, architecture=dict(\n"
        f"    {TINY_ARCH}))\n"
        "train_dataloader = dict(num_workers=0, dataset=dict(\n"
        f"    data_root='{set_dir}/'))\n"
        "train_cfg = dict(max_iters=1, val_interval=10,\n"
        f"    synthesis=dict({synthesis}))\n"
        "val_dataloader = None\nval_cfg = None\nval_evaluator = None\n"
        "test_dataloader = None\ntest_cfg = None\ntest_evaluator = None\n")
    return str(cfg)


def test_train_py_refused_set_is_one_line(tmp_path):
    three = str(tmp_path / 'three')
    hand_set(three)  # 3 classes; the model has 80
    r = subprocess.run(
        [sys.executable, 'tools/train.py',
         _train_py_cfg(tmp_path, three, 'num_images=3'), '--work-dir',
         str(tmp_path / 'wd')], cwd=ROOT, env=ENV, capture_output=True,
        text=True, timeout=300)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and 'Traceback' not in r.stderr, \
        r.stderr[-3000:]
    assert last.startswith('error: synthetic set ') and \
        ': it has 3 classes, the model 80; ' in last, last


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(cmd, set_dir, timeout=240):
    """Run ``cmd``; SIGINT once batch 0 is written; (rc, stderr)."""
    # the child starts with Ctrl-C's default action whatever this test
    # process inherited or was left with (Python keeps an ignored SIGINT
    # ignored, and the signal would be lost)
    p = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=_default_sigint)
    rec = osp.join(set_dir, 'batches', '00000.json')
    t0 = time.time()
    try:
        while not osp.exists(rec):
            assert p.poll() is None, p.stderr.read()[-3000:]
            assert time.time() - t0 < timeout, 'no batch written in time'
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err


def _check_interrupted(rc, err, set_dir):
    last = err.strip().splitlines()[-1]
    assert rc == 130 and 'Traceback' not in err, err[-3000:]
    assert last.startswith('interrupted: ') and \
        f'of 8 batches of {set_dir} are finished and kept; rerun the same ' \
        'command to resume' in last, last
    done = int(last.split()[1])
    assert 1 <= done < 8 and len(glob.glob(
        osp.join(set_dir, 'batches', '*.json'))) == done


def test_ctrl_c_synthesize_py(tmp_path, monkeypatch, capsys):
    """In-process (the subprocess way is test_ctrl_c_train_py): Ctrl-C
    after batch 0 -> one line, exit 130; the rerun resumes."""
    import importlib.util

    from mmzsq.synthesis import SyntheticSet
    set_dir = str(tmp_path / 'set')
    cfg = tmp_path / 'syn_cfg.py'
    cfg.write_text(
        f"_base_ = '{ROOT}/configs/synthesis/yolov5_n-v61_coco.py'\n"
        f"model = dict({TINY_ARCH})\n"
        f"train_dataloader = dict(dataset=dict(data_root='{set_dir}'))\n"
        "train_cfg = dict(synthesis=dict(teacher_checkpoint=None,\n"
        "    num_images=3, batch_size=1, log_interval=1, amp=False,\n"
        "    channels_last=False, als=None,\n"
        "    stages=[dict(resolution=64, iters=1)]))\n")
    spec = importlib.util.spec_from_file_location(
        'synthesize_tool', osp.join(ROOT, 'tools', 'synthesize.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    orig = SyntheticSet.write_batch

    def ctrl_c_after_first(self, k, *a, **kw):
        orig(self, k, *a, **kw)
        raise KeyboardInterrupt  # what SIGINT raises in the main thread

    monkeypatch.setattr(SyntheticSet, 'write_batch', ctrl_c_after_first)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        tool.main([str(cfg)])
    err = capsys.readouterr().err
    assert e.value.code == 130
    assert err.strip().splitlines()[-1] == (
        f'interrupted: 1 of 3 batches of {set_dir} are finished and kept; '
        'rerun the same command to resume'), err[-2000:]
    monkeypatch.setattr(SyntheticSet, 'write_batch', orig)
    tool.main([str(cfg)])  # resumes
    assert f'{set_dir}: 3 images' in capsys.readouterr().out


def test_ctrl_c_train_py(tmp_path):
    set_dir = str(tmp_path / 'set')
    cfg = _train_py_cfg(tmp_path, set_dir, SLOW_SYNTHESIS)
    rc, err = _interrupt([sys.executable, 'tools/train.py', cfg,
                          '--work-dir', str(tmp_path / 'wd')], set_dir)
    _check_interrupted(rc, err, set_dir + '/')
