"""Locate (or download) the assets the demo and benchmarks need: the
YOLOv5n release weights and a COCO val folder, from the command line, the
environment or ``../shared`` (``$MMZSQ_SHARED``)."""
import os
import os.path as osp
from typing import Optional

YOLOV5N_URL = ('https://github.com/ultralytics/yolov5/releases/download/'
               'v6.1/yolov5n.pt')
YOLOV5N_SHA256 = \
    '4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3'
SHARED = osp.normpath(osp.join(osp.dirname(__file__), '..', '..', '..',
                               'shared'))


def shared_path(*parts: str) -> str:
    """A path under ``../shared`` (or ``$MMZSQ_SHARED``)."""
    return osp.join(os.environ.get('MMZSQ_SHARED', SHARED), *parts)


def download(url: str, dst: str, sha256: Optional[str] = None) -> str:
    """Download ``url`` to ``dst`` with ``torch.hub.download_url_to_file``
    (a temporary file moved into place; the sha256 checked first)."""
    from torch.hub import download_url_to_file
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    try:
        download_url_to_file(url, dst, hash_prefix=sha256, progress=False)
    except OSError as e:
        raise RuntimeError(
            f'could not download {url} ({e}). Offline? Pass a local file '
            'instead (--checkpoint PATH or $MMZSQ_YOLOV5N).') from None
    except RuntimeError as e:  # torch: 'invalid hash value (expected ...)'
        raise RuntimeError(f'{url}: checksum mismatch, download corrupted '
                           f'({e})') from None
    return dst


def yolov5n_checkpoint(path: Optional[str] = None,
                       cache_dir: str = 'work_dirs/weights') -> str:
    """The Ultralytics YOLOv5n v6.1 ``.pt``: ``path``, ``$MMZSQ_YOLOV5N``,
    ``../shared/weights``, a cached download, or a fresh download."""
    path = path or os.environ.get('MMZSQ_YOLOV5N')
    if path:
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'checkpoint not found: {path}. Give an Ultralytics '
                'yolov5n.pt (v6.1).')
        return path
    for cand in (shared_path('weights', 'yolov5n-v6.1.pt'),
                 osp.join(cache_dir, 'yolov5n-v6.1.pt')):
        if osp.isfile(cand):
            return cand
    return download(YOLOV5N_URL, osp.join(cache_dir, 'yolov5n-v6.1.pt'),
                    YOLOV5N_SHA256)


def coco_val_root(path: Optional[str] = None) -> Optional[str]:
    """A COCO-format val folder (``annotations/instances_val2017.json`` +
    ``val2017/``): ``path``, ``$MMZSQ_COCO_ROOT``, or the 80-image subset in
    ``../shared``; ``None`` when there is none (evaluation is skipped)."""
    for cand in (path, os.environ.get('MMZSQ_COCO_ROOT'),
                 shared_path('data', 'coco_tiny_val2017')):
        if cand and osp.isfile(
                osp.join(cand, 'annotations', 'instances_val2017.json')):
            return cand.rstrip('/') + '/'
        if cand and cand == path:
            raise FileNotFoundError(
                f'{path} is not a COCO val folder: expected '
                'annotations/instances_val2017.json and val2017/ inside it')
    return None
