import gc
import os
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# this checkout's mmzsq first (matters for git worktrees beside an editable
# install)
sys.path.insert(0, ROOT)

import mmzsq  # noqa: E402,F401  (before mmrazor: its torch 2.x patch)
import mmdet.models  # noqa: E402,F401
import mmrazor.models  # noqa: E402,F401
import mmyolo.models  # noqa: E402,F401

# mmengine datasets call gc.collect() when they are built; on this machine a
# full collection over the ~400k objects of the imported stack takes ~0.5 s.
# Freezing what the imports made (it stays alive for the whole session
# anyway) leaves each collection only the objects the tests create.
gc.freeze()

# the read-only data beside the checkout (../shared, or $MMZSQ_SHARED)
SHARED = os.environ.get('MMZSQ_SHARED', osp.join(osp.dirname(ROOT), 'shared'))


def shared_path(*parts):
    return osp.join(SHARED, *parts)


YOLOV5N_PT = shared_path('weights', 'yolov5n-v6.1.pt')
COCO_TINY = shared_path('data', 'coco_tiny_val2017')
COCO128 = shared_path('data', 'coco128')


def _need(path):
    return pytest.mark.skipif(
        not osp.exists(path), reason=f'{path} absent (../shared not here)')


needs_yolov5n = _need(YOLOV5N_PT)
needs_coco_tiny = _need(COCO_TINY)
needs_coco128 = _need(COCO128)


@pytest.fixture(scope='session')
def yolov5n_mmyolo_ckpt(tmp_path_factory):
    """The shared YOLOv5n converted to an mmyolo checkpoint (once)."""
    if not osp.exists(YOLOV5N_PT):
        pytest.skip(f'{YOLOV5N_PT} absent (../shared not here)')
    import torch

    from mmzsq.converters.yolov5 import convert_yolov5
    dst = tmp_path_factory.mktemp('weights') / 'yolov5n.pth'
    torch.save(convert_yolov5(YOLOV5N_PT), dst)
    return str(dst)


@pytest.fixture(autouse=True)
def _chdir_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    os.environ.setdefault('MPLBACKEND', 'Agg')
