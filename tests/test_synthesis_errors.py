"""Stage I failure modes: each ends in one line naming the fix (or a
warning), never in a traceback or a silently bad set.  Tiny random YOLOv5
teachers (no checkpoint), so these run without ../shared."""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT

ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')


# ---------------------------------------------------------------- helpers
def tiny_yolo():
    """YOLOv5 at widen 0.125 (8 stem channels), random weights."""
    from mmengine.config import Config
    model = Config.fromfile(osp.join(
        ROOT, 'configs/yolov5/yolov5_n-v61_fp_coco.py')).model.to_dict()
    for k in ('backbone', 'neck'):
        model[k]['widen_factor'] = 0.125
    model['bbox_head']['head_module']['widen_factor'] = 0.125
    return model


def tiny_synthesis(**kw):
    syn = dict(teacher=tiny_yolo(), teacher_checkpoint=None, num_images=2,
               batch_size=2, seed=0, stages=[dict(resolution=64, iters=1)],
               als=None, amp=False, channels_last=False, lr=0.1,
               prior_loss=dict(type='mmzsq.BNStatisticsLoss',
                               loss_weight=0.01),
               log_interval=1)
    syn.update(kw)
    return syn


def hand_set(set_dir, classes=('a', 'b', 'c'), n=3, res=64, info=None):
    """A finished set written through SyntheticSet (no model)."""
    from mmzsq.synthesis import SyntheticSet
    s = SyntheticSet(set_dir)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (res, res, 3), dtype=np.uint8)
            for _ in range(n)]
    labels = [(np.array([[4., 4., 40., 50.]]), np.array([i % len(classes)]))
              for i in range(n)]
    s.write_batch(0, imgs, labels, [0.1] * n)
    s.merge(1, list(classes), dict(info or {}, seed=0))
    return s


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    """A real two-image set from the tiny random teacher (made once)."""
    from mmzsq.synthesis import generate_synthetic_set
    set_dir = str(tmp_path_factory.mktemp('tiny') / 'set')
    syn = tiny_synthesis()
    generate_synthetic_set(syn, set_dir, log_level='WARNING')
    return set_dir, syn


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('logs'))
    return str(dst)


def _truncate(path, keep=0.5):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


# ---------------------------------------------------------------- 1 + 2
def test_nonfinite_loss_stops_batch_unwritten(tmp_path):
    from mmzsq.synthesis import generate_synthetic_set
    from mmzsq.utils.errors import NonFiniteLossError
    set_dir = str(tmp_path / 'set')
    syn = tiny_synthesis(prior_loss=dict(type='mmzsq.BNStatisticsLoss',
                                         loss_weight=1e40))
    with pytest.raises(NonFiniteLossError) as e:
        generate_synthetic_set(syn, set_dir, log_level='WARNING')
    msg = str(e.value)
    assert '\n' not in msg
    for part in ('batch 0', 'step 1', 'loss_prior is inf',
                 'synthesis.prior_loss.loss_weight', 'rerun'):
        assert part in msg, msg
    assert not glob.glob(osp.join(set_dir, 'images', '*'))
    assert not glob.glob(osp.join(set_dir, 'batches', '*'))
    assert not osp.exists(osp.join(set_dir, 'annotations.json'))


def test_nonfinite_check_names_the_term():
    from types import SimpleNamespace

    import torch

    from mmzsq.engine.runner import SynthesisLoop
    from mmzsq.utils.errors import NonFiniteLossError
    loop = SimpleNamespace(amp=True, FIX_HINTS=SynthesisLoop.FIX_HINTS)
    values = SynthesisLoop._values(dict(loss_det=torch.tensor(1.),
                                        loss_l2=torch.tensor(float('nan')),
                                        loss=torch.tensor(float('nan'))))
    assert values['loss_det'] == 1.
    with pytest.raises(NonFiniteLossError,
                       match=r'batch 7 \(stage 1, step 3\): loss_l2 is nan; '
                       r'lower synthesis.l2_loss.loss_weight .*amp=False'):
        SynthesisLoop._check_finite(loop, values, 7, 1, 3)
    SynthesisLoop._check_finite(loop, dict(loss=2.), 7, 1, 3)  # finite


def test_saturation_warning_huge_lr(tmp_path):
    import cv2

    from mmzsq.synthesis import generate_synthetic_set
    set_dir = str(tmp_path / 'set')
    out = generate_synthetic_set(tiny_synthesis(lr=1e6), set_dir)
    coco = out['coco']
    img = cv2.imread(osp.join(set_dir, 'images',
                              coco['images'][0]['file_name']))
    assert np.mean((img == 0) | (img == 255)) > 0.9  # written, saturated
    logs = ''.join(open(p).read() for p in glob.glob(
        osp.join(set_dir, 'logs', '**', '*.log'), recursive=True))
    lines = [ln for ln in logs.splitlines() if 'saturated' in ln]
    assert len(lines) == 1, logs[-2000:]
    assert 'WARNING' in lines[0] and 'synthesis batch 0' in lines[0] and \
        'lr 1e+06 is likely too high: lower synthesis.lr' in lines[0]


# ---------------------------------------------------------------- 3
def _train_cfg(set_dir, synthesis=None, arch=None, ckpt=None):
    from mmengine.config import Config
    return Config(dict(
        model=dict(type='mmzsq.QuantDistillAlgorithm',
                   architecture=arch or tiny_yolo(), init_checkpoint=ckpt),
        train_dataloader=dict(dataset=dict(
            type='mmzsq.SyntheticDetDataset', data_root=set_dir + '/',
            synthesis=synthesis, pipeline=[]))))


def _build(ds_cfg):
    from mmengine.registry import DefaultScope

    from mmzsq.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmyolo'):
        return DATASETS.build(ds_cfg)


def test_expectations_filled_whatever_the_config(tiny_set, tmp_path):
    from mmzsq.synthesis import teacher_hash
    from mmzsq.utils.zsq_config import fill_synthesis_teacher
    set_dir, syn = tiny_set
    arch = tiny_yolo()
    cfg = fill_synthesis_teacher(_train_cfg(set_dir, arch=arch))
    ex = cfg.train_dataloader.dataset.expect
    assert ex.num_classes == 80
    # as Stage I computes it for the float model
    assert ex.teacher_hash == teacher_hash(dict(teacher=arch)) == \
        json.load(open(osp.join(set_dir, 'meta.json')))['teacher_hash']
    assert len(_build(cfg.train_dataloader.dataset)) == 2  # its own set
    # a checkpoint: the file's sha, as synthesis records it
    ckpt = tmp_path / 'w.pth'
    ckpt.write_bytes(b'weights')
    cfg = fill_synthesis_teacher(_train_cfg(set_dir, ckpt=str(ckpt)))
    ex = cfg.train_dataloader.dataset.expect
    assert ex.teacher_hash == teacher_hash(dict(
        teacher={}, teacher_checkpoint=str(ckpt)))
    # with synthesis=dict(...): the synthesis teacher's hash
    cfg = fill_synthesis_teacher(_train_cfg(set_dir, dict(syn)))
    assert cfg.train_dataloader.dataset.expect.teacher_hash == \
        teacher_hash(syn)
    # two-stage models: roi_head.bbox_head.num_classes
    from mmzsq.utils.zsq_config import model_num_classes
    assert model_num_classes(dict(roi_head=dict(bbox_head=dict(
        num_classes=3)))) == 3
    assert model_num_classes(dict(roi_head=dict(bbox_head=[dict(
        num_classes=5)] * 3))) == 5


def test_set_of_another_model_refused(tiny_set, tmp_path):
    from mmzsq.synthesis import SetMismatchError
    from mmzsq.utils.zsq_config import fill_synthesis_teacher
    set_dir, syn = tiny_set
    # another teacher (other seed of weights = another checkpoint)
    ckpt = tmp_path / 'other.pth'
    ckpt.write_bytes(b'other weights')
    cfg = fill_synthesis_teacher(_train_cfg(set_dir, ckpt=str(ckpt)))
    with pytest.raises(SetMismatchError, match=r'made for another model: '
                       r'its teacher_hash is [0-9a-f]{16} \(teacher None\), '
                       r"the model's [0-9a-f]{16} \(init_checkpoint "
                       r'.*other.pth\); point data_root to the set of this '
                       'model'):
        _build(cfg.train_dataloader.dataset)
    # without meta.json: annotations.json's info.teacher_hash
    bare = _copy(set_dir, tmp_path / 'bare')
    os.remove(osp.join(bare, 'meta.json'))
    cfg = fill_synthesis_teacher(_train_cfg(bare, ckpt=str(ckpt)))
    with pytest.raises(SetMismatchError, match='teacher_hash'):
        _build(cfg.train_dataloader.dataset)
    # a 3-class set (no meta.json, no teacher hash: classes from the
    # categories) read by an 80-class model: refused, not an IndexError in
    # the head
    three = str(tmp_path / 'three')
    hand_set(three)
    assert not osp.exists(osp.join(three, 'meta.json'))
    cfg = fill_synthesis_teacher(_train_cfg(three))
    with pytest.raises(SetMismatchError,
                       match=r': it has 3 classes, the model 80; '):
        _build(cfg.train_dataloader.dataset)
    arch = tiny_yolo()
    arch['bbox_head']['head_module']['num_classes'] = 3
    cfg = fill_synthesis_teacher(_train_cfg(three, arch=arch))
    assert len(_build(cfg.train_dataloader.dataset)) == 3  # no hash: ok


# ---------------------------------------------------------------- 4
def test_png_problem():
    import cv2

    from mmzsq.synthesis.synthetic_set import png_problem
    img = np.random.default_rng(0).integers(0, 256, (64, 48, 3), np.uint8)
    data = cv2.imencode('.png', img)[1].tobytes()
    d = '/tmp' if not os.environ.get('TMPDIR') else os.environ['TMPDIR']
    p = osp.join(d, f'mmzsq_png_{os.getpid()}.png')
    try:
        for blob, want in [
                (data, None), (data[:len(data) // 2], 'truncated'),
                (data[:-1], 'truncated'), (b'', 'not a PNG'),
                (data[:100] + bytes([data[100] ^ 1]) + data[101:], 'CRC'),
                (data + b'x', 'after IEND')]:
            open(p, 'wb').write(blob)
            why = png_problem(p)
            assert (why is None) if want is None else want in why, \
                (want, why)
        open(p, 'wb').write(data)
        assert png_problem(p, 64, 48) is None
        assert '48x64 px, the record says 64x64' in png_problem(p, 64, 64)
    finally:
        os.remove(p)


def test_corrupt_png_refused_or_redone(tiny_set, tmp_path):
    from mmzsq.datasets import SyntheticDetDataset
    from mmzsq.synthesis import SetMismatchError, SyntheticSet
    set_dir, syn = tiny_set
    work = _copy(set_dir, tmp_path / 'set')
    img = osp.join(work, 'images', '00000_001.png')
    good = open(img, 'rb').read()
    _truncate(img)
    # synthesis=None: refused, naming the file and the fix
    with pytest.raises(SetMismatchError) as e:
        SyntheticDetDataset(data_root=work + '/', pipeline=[])
    msg = str(e.value)
    assert '\n' not in msg and 'images/00000_001.png is truncated' in msg \
        and 'delete it and its batch record batches/00000.json' in msg \
        and 'rerun tools/synthesize.py' in msg, msg
    # the batch no longer counts as done
    assert not SyntheticSet(work).batch_done(0)
    # with synthesis: the batch is redone (bitwise, same seed)
    ds = SyntheticDetDataset(data_root=work + '/', synthesis=syn,
                             pipeline=[])
    assert len(ds) == 2 and open(img, 'rb').read() == good


def test_open_check_cost_64_images_320px(tmp_path):
    from mmzsq.synthesis import SyntheticSet
    s = hand_set(str(tmp_path / 'set'), n=64, res=320)
    t = time.perf_counter()
    assert s.is_complete(64)
    dt = time.perf_counter() - t
    print(f'\nis_complete on 64 images of 320 px: {dt * 1e3:.0f} ms')
    assert dt < 2.0  # ~ 50 ms idle; a full decode is ~ 5x that
    _truncate(osp.join(s.img_dir, '00000_063.png'), 0.99)
    assert not SyntheticSet(s.set_dir).is_complete(64, repairable=True)


# ---------------------------------------------------------------- 7
def test_stale_tmp_files_cleaned_on_open(tmp_path):
    from mmzsq.synthesis import SyntheticSet, set_meta
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    p.wait()
    dead, live = p.pid, os.getpid()
    s = SyntheticSet(str(tmp_path / 'set'))
    os.makedirs(s.img_dir)
    os.makedirs(s.batch_dir)
    stale = [osp.join(s.img_dir, f'00003_000.png.tmp{dead}'),
             osp.join(s.batch_dir, f'00003.json.tmp{dead}'),
             osp.join(s.set_dir, f'annotations.json.tmp{dead}')]
    kept = [osp.join(s.img_dir, f'00004_000.png.tmp{live}'),
            osp.join(s.img_dir, '00005_000.png')]
    for f in stale + kept:
        open(f, 'wb').write(b'x')
    meta = set_meta(tiny_synthesis())
    s.open(meta, rank=1)  # only rank 0 cleans
    assert all(osp.exists(f) for f in stale)
    s.open(meta, rank=0)
    assert not any(osp.exists(f) for f in stale)
    assert all(osp.exists(f) for f in kept)  # a live writer's, a real file
    assert osp.exists(osp.join(s.set_dir, 'meta.json'))


# ---------------------------------------------------------------- 5 + 6
TINY_ARCH = ("backbone=dict(widen_factor=0.125), "
             "neck=dict(widen_factor=0.125),\n"
             "    bbox_head=dict(head_module=dict(widen_factor=0.125))")


def _train_py_cfg(tmp_path, set_dir, synthesis='None'):
    cfg = tmp_path / 'train_cfg.py'
    cfg.write_text(
        f"_base_ = '{ROOT}/configs/zsq/yolov5_n_w8a8.py'\n"
        "model = dict(init_checkpoint=None, architecture=dict(\n"
        f"    {TINY_ARCH}))\n"
        "train_dataloader = dict(num_workers=0, dataset=dict(\n"
        f"    data_root='{set_dir}/', synthesis={synthesis}))\n"
        "train_cfg = dict(max_iters=1, val_interval=10)\n"
        "val_dataloader = None\nval_cfg = None\nval_evaluator = None\n"
        "test_dataloader = None\ntest_cfg = None\ntest_evaluator = None\n")
    return str(cfg)


def test_train_py_refused_set_is_one_line(tmp_path):
    three = str(tmp_path / 'three')
    hand_set(three)  # 3 classes; the model has 80
    r = subprocess.run(
        [sys.executable, 'tools/train.py',
         _train_py_cfg(tmp_path, three), '--work-dir',
         str(tmp_path / 'wd')], cwd=ROOT, env=ENV, capture_output=True,
        text=True, timeout=300)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and 'Traceback' not in r.stderr, \
        r.stderr[-3000:]
    assert last.startswith('error: synthetic set ') and \
        ': it has 3 classes, the model 80; ' in last, last


SLOW_SYNTHESIS = (
    "num_images=8, batch_size=1, log_interval=1, amp=False,\n"
    "    channels_last=False, als=None,\n"
    "    stages=[dict(resolution=64, iters=25)]")


def _interrupt(cmd, set_dir, timeout=240):
    """Run ``cmd``; SIGINT once batch 0 is written; (rc, stderr)."""
    p = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
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
        "train_dataloader = dict(dataset=dict(\n"
        f"    data_root='{set_dir}',\n"
        "    synthesis=dict(teacher_checkpoint=None, teacher=dict(\n"
        f"        {TINY_ARCH}),\n"
        "    num_images=3, batch_size=1, log_interval=1, amp=False,\n"
        "    channels_last=False, als=None,\n"
        "    stages=[dict(resolution=64, iters=1)])))\n")
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
    cfg = _train_py_cfg(tmp_path, set_dir, f'dict({SLOW_SYNTHESIS})')
    rc, err = _interrupt([sys.executable, 'tools/train.py', cfg,
                          '--work-dir', str(tmp_path / 'wd')], set_dir)
    _check_interrupted(rc, err, set_dir + '/')
