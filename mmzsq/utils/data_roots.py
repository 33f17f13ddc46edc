"""COCO data folders named by environment variables, checked before a run.

mmzsq configs read their val/test folder as ``{{$MMZSQ_COCO_ROOT:data/coco/}}``
and the real-data baselines their train folder as
``{{$MMZSQ_COCO_TRAIN_ROOT:data/coco/}}``; the configs glue file names onto
it (``data_root + 'annotations/...'``).  :func:`normalize_root_env` makes a
root given without its trailing ``/`` work, and :func:`check_coco_data`
finds a missing folder or annotation file before anything slow starts
(Stage I, model building), naming the variable to set.
"""
import os
import os.path as osp
from typing import Iterable, Optional

from mmzsq.utils.errors import UserError

ROOT_VARS = {
    'MMZSQ_COCO_ROOT': ('val/test', 'annotations/instances_val2017.json '
                        '+ val2017/', '../shared/data/coco_tiny_val2017'),
    'MMZSQ_COCO_TRAIN_ROOT': ('real-data train',
                              'annotations/instances_train2017.json + '
                              'train2017/', '../shared/data/coco128'),
}


def normalize_root_env(environ=os.environ) -> None:
    """Give ``$MMZSQ_COCO_ROOT`` / ``$MMZSQ_COCO_TRAIN_ROOT`` a trailing
    ``/`` (configs concatenate file names onto them) and refuse one that is
    not a folder.  Call before ``Config.fromfile``."""
    for var, (what, layout, example) in ROOT_VARS.items():
        val = environ.get(var)
        if val is None:
            continue
        if not val.strip():
            del environ[var]
            continue
        path = osp.expanduser(val)
        if not osp.isdir(path):
            raise UserError(
                f'${var}={val} is not a folder; point it at a COCO-format '
                f'{what} folder ({layout}), e.g. {var}={example}/')
        environ[var] = path.rstrip('/') + '/'


def _var_for(path: str, environ) -> Optional[str]:
    for var in ROOT_VARS:
        root = environ.get(var)
        if root and osp.abspath(path).startswith(osp.abspath(root)):
            return var
    return None


def _hint(path: str, default_var: str, environ) -> str:
    own = environ.get(default_var)
    var = default_var if own and osp.abspath(path).startswith(
        osp.abspath(own)) else (_var_for(path, environ) or default_var)
    what, layout, example = ROOT_VARS[var]
    if environ.get(var):
        return (f'${var}={environ[var]} does not hold a COCO-format {what} '
                f'folder ({layout}); fix it, e.g. {var}={example}/')
    return (f'set ${var} to a COCO-format {what} folder ({layout}), e.g. '
            f'{var}={example}/')


def _dataset_paths(ds) -> Iterable[str]:
    """Files/folders a (plain) mmdet/mmyolo COCO dataset dict reads."""
    if not isinstance(ds, dict):
        return []
    if 'dataset' in ds and isinstance(ds['dataset'], dict):  # wrappers
        return _dataset_paths(ds['dataset'])
    root = ds.get('data_root') or ''
    out = []
    ann = ds.get('ann_file')
    if isinstance(ann, str) and ann:
        out.append(ann if osp.isabs(ann) else osp.join(root, ann))
    prefix = ds.get('data_prefix') or {}
    img = prefix.get('img') if isinstance(prefix, dict) else None
    if isinstance(img, str) and img:
        out.append(img if osp.isabs(img) else osp.join(root, img))
    return out


def _evaluator_paths(ev) -> Iterable[str]:
    evs = ev if isinstance(ev, (list, tuple)) else [ev]
    return [e['ann_file'] for e in evs
            if isinstance(e, dict) and isinstance(e.get('ann_file'), str)]


def _missing(paths: Iterable[str]) -> Optional[str]:
    for p in paths:
        if not osp.exists(p):
            return p
        if osp.isdir(p) and not os.listdir(p):
            return p + ' (empty)'
    return None


def check_coco_data(cfg, splits=('val', ), environ=os.environ) -> None:
    """Refuse a run whose ``splits`` (any of ``'train'``, ``'val'``,
    ``'test'``) name data that is not there.  A synthetic train set is
    skipped (Stage I makes it: ``train_cfg.synthesis``); so is a split the
    config switches off."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or (split != 'train' and not cfg.get(f'{split}_cfg')):
            continue
        ds = loader.get('dataset')
        if split == 'train' and (cfg.get('train_cfg') or {}).get(
                'synthesis') is not None:
            continue
        paths = list(_dataset_paths(ds))
        if split != 'train':
            paths += _evaluator_paths(cfg.get(f'{split}_evaluator'))
        bad = _missing(paths)
        if bad:
            var = 'MMZSQ_COCO_TRAIN_ROOT' if split == 'train' \
                else 'MMZSQ_COCO_ROOT'
            fix = _hint(bad, var, environ)
            if split == 'val':
                fix += (', or train without validation: --cfg-options '
                        'val_cfg=None val_dataloader=None '
                        'val_evaluator=None')
            raise UserError(f'{split} data not found: {bad}; {fix}')
