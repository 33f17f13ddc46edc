"""The on-disk set: PNG checks, corrupt images refused or redone, open
cost, stale temporary files, and a plain mmyolo dataset reading a set
through mmyolo's YOLOv5 train pipeline."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.data.stage_one import (generate_synthetic_set, hand_set,
                                  tiny_synthesis)


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    """A real two-image set from the tiny random teacher (made once)."""
    set_dir = str(tmp_path_factory.mktemp('tiny') / 'set')
    syn = tiny_synthesis()
    generate_synthetic_set(syn, set_dir)
    return set_dir, syn


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('logs'))
    return str(dst)


def _truncate(path, keep=0.5):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


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
    from mmzsq.synthesis import SetMismatchError, SyntheticSet
    set_dir, syn = tiny_set
    work = _copy(set_dir, tmp_path / 'set')
    img = osp.join(work, 'images', '00000_001.png')
    good = open(img, 'rb').read()
    _truncate(img)
    # when it cannot be repaired: refused, naming the file and the fix
    with pytest.raises(SetMismatchError) as e:
        SyntheticSet(work).is_complete(2)
    msg = str(e.value)
    assert '\n' not in msg and 'images/00000_001.png is truncated' in msg \
        and 'delete it and its batch record batches/00000.json' in msg \
        and 'rerun tools/synthesize.py' in msg, msg
    # the batch no longer counts as done
    assert not SyntheticSet(work).batch_done(0)
    # Stage I redoes it (bitwise, same seed)
    assert not SyntheticSet(work).is_complete(2, repairable=True)
    out = generate_synthetic_set(syn, work)
    assert out['stats']['done_batches'] == [0]
    assert open(img, 'rb').read() == good


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
    meta = set_meta(tiny_synthesis(), teacher_hash='0' * 16)
    s.open(meta, rank=1)  # only rank 0 cleans
    assert all(osp.exists(f) for f in stale)
    s.open(meta, rank=0)
    assert not any(osp.exists(f) for f in stale)
    assert all(osp.exists(f) for f in kept)  # a live writer's, a real file
    assert osp.exists(osp.join(s.set_dir, 'meta.json'))


def test_plain_mmyolo_dataset_reads_a_set_through_mmyolo_pipeline(
        tiny_set, tmp_path):
    """The set is plain COCO: mmyolo's YOLOv5CocoDataset reads it through
    mmyolo's own YOLOv5 train pipeline (Mosaic, RandomAffine, HSV, flip;
    minus Albu: albumentations is not installed)."""
    from mmengine.registry import DefaultScope
    from mmyolo.registry import DATASETS

    from mmengine.config import Config

    from mmzsq.synthesis import SyntheticSet
    from tests.conftest import ROOT
    cfg = Config.fromfile(osp.join(ROOT,
                                   'configs/yolov5/yolov5_n-v61_fp_coco.py'))
    pipeline = [t for t in cfg.train_pipeline if 'Albu' not in t['type']]
    assert any(t['type'] == 'Mosaic' for t in pipeline)
    set_dir, _ = tiny_set
    with DefaultScope.overwrite_default_scope('mmyolo'):
        ds = DATASETS.build(dict(
            type='YOLOv5CocoDataset', data_root=set_dir + '/',
            ann_file='annotations.json', data_prefix=dict(img='images/'),
            metainfo=dict(classes=tuple(SyntheticSet(set_dir).classes())),
            filter_cfg=dict(filter_empty_gt=False), pipeline=pipeline))
        assert len(ds) == 2
        item = ds[0]
    assert item['inputs'].shape[0] == 3 and item['inputs'].shape[1] == 640
    assert len(item['data_samples'].gt_instances.bboxes) >= 1
    assert ds.metainfo['classes'][0] == 'person'
