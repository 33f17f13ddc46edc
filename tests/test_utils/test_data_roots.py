"""$MMZSQ_COCO_ROOT / $MMZSQ_COCO_TRAIN_ROOT: accepted without their
trailing ``/``, named when wrong, and checked before anything slow."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmzsq.utils.data_roots import check_coco_data, normalize_root_env
from mmzsq.utils.errors import UserError
from tests.conftest import ROOT
from tests.data.tiny_coco import make_tiny_coco

ZSQ_CFG = osp.join(ROOT, 'configs', 'zsq', 'yolov5_n_w8a8.py')
REAL_CFG = osp.join(ROOT, 'configs', 'zsq', 'yolov5_n_lsq-real_w8a8.py')
FP_CFG = osp.join(ROOT, 'configs', 'yolov5', 'yolov5_n-v61_fp_coco.py')


@pytest.fixture
def coco(tmp_path):
    return make_tiny_coco(tmp_path / 'coco')


def _cfg(path, env):
    normalize_root_env(env)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Config.fromfile(path)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_root_without_trailing_slash_is_accepted(coco):
    env = dict(MMZSQ_COCO_ROOT=coco.rstrip('/'))
    cfg = _cfg(ZSQ_CFG, env)
    assert env['MMZSQ_COCO_ROOT'] == coco
    assert cfg.val_evaluator.ann_file == \
        coco + 'annotations/instances_val2017.json'
    check_coco_data(cfg, ('val', 'test'), env)  # no error


def test_root_that_is_not_a_folder_names_the_variable(tmp_path):
    env = dict(MMZSQ_COCO_ROOT=str(tmp_path / 'nope'))
    with pytest.raises(UserError, match=r'\$MMZSQ_COCO_ROOT=.*nope is not '
                       r'a folder.*coco_tiny_val2017'):
        normalize_root_env(env)


def test_empty_root_names_the_variable(tmp_path):
    (tmp_path / 'empty').mkdir()
    env = dict(MMZSQ_COCO_ROOT=str(tmp_path / 'empty'))
    cfg = _cfg(ZSQ_CFG, env)
    with pytest.raises(UserError) as e:
        check_coco_data(cfg, ('val', ), env)
    msg = str(e.value)
    assert msg.startswith('val data not found: ')
    assert '$MMZSQ_COCO_ROOT=' in msg and 'instances_val2017.json' in msg
    assert 'val_cfg=None' in msg  # the way to train without validation


def test_missing_image_folder(coco):
    shutil.rmtree(coco + 'val2017')
    env = dict(MMZSQ_COCO_ROOT=coco)
    cfg = _cfg(FP_CFG, env)
    with pytest.raises(UserError, match=r'test data not found: .*val2017'):
        check_coco_data(cfg, ('test', ), env)


def test_unset_root_names_the_variable():
    env = {}
    cfg = _cfg(ZSQ_CFG, env)
    cfg.val_dataloader.dataset.data_root = '/nonexistent/coco/'
    with pytest.raises(UserError, match=r'set \$MMZSQ_COCO_ROOT to'):
        check_coco_data(cfg, ('val', ), env)


def test_real_train_root_is_checked(coco):
    shutil.rmtree(coco + 'train2017')
    env = dict(MMZSQ_COCO_ROOT=coco, MMZSQ_COCO_TRAIN_ROOT=coco)
    cfg = _cfg(REAL_CFG, env)
    with pytest.raises(UserError, match=r'train data not found: .*train2017'
                       r'.*\$MMZSQ_COCO_TRAIN_ROOT'):
        check_coco_data(cfg, ('train', 'val'), env)


def _tool(args, env):
    return subprocess.run([sys.executable] + args, cwd=ROOT, timeout=300,
                          capture_output=True, text=True,
                          env={**os.environ, **env})


def test_train_checks_val_data_before_stage_one(tmp_path):
    """A zero-shot config with a bad val root stops before synthesis."""
    (tmp_path / 'empty').mkdir()
    set_dir = tmp_path / 'set'
    out = _tool(['tools/train.py', ZSQ_CFG, '--work-dir', str(tmp_path / 'w'),
                 '--cfg-options', 'model.init_checkpoint=None',
                 f'train_dataloader.dataset.data_root={set_dir}/'],
                dict(MMZSQ_COCO_ROOT=str(tmp_path / 'empty')))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: val data not found') and \
        'MMZSQ_COCO_ROOT' in last, out.stderr[-2000:]
    assert not set_dir.exists()  # Stage I never started


def test_test_py_missing_val_images(coco, yolov5n_mmyolo_ckpt):
    shutil.rmtree(coco + 'val2017')
    out = _tool(['tools/test.py', FP_CFG, yolov5n_mmyolo_ckpt],
                dict(MMZSQ_COCO_ROOT=coco.rstrip('/')))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: test data not found') and \
        'val2017' in last, out.stderr[-2000:]
