"""Read an Ultralytics ``.pt`` without the Ultralytics source.

An Ultralytics checkpoint is a dict holding a pickled model: a YOLOv5
``models.yolo.Model`` (ultralytics/yolov5) or an Ultralytics 8.x
``ultralytics.nn.tasks.DetectionModel`` built from ``ultralytics.nn.modules``.
Unpickling it normally needs that source.  We unpickle it with a restricted
unpickler instead: every class of those packages, and every ``torch.nn``
module, becomes a :class:`ModuleRecord` that only remembers its
``__dict__``; any other global outside a small allow-list is refused, so
nothing in the file is ever run.  The model-specific converters
(:mod:`.yolov5`, :mod:`.yolo11`) then walk the records.
"""
import collections
import hashlib
import os.path as osp
import pickle
import zipfile
from typing import Callable, Dict, List, Tuple

import torch

__all__ = ['ModuleRecord', 'load_records', 'named_tensors', 'short_class']


def _numpy_globals() -> dict:
    """numpy scalars/dtypes (Ultralytics' saved metrics may hold them)."""
    try:
        import numpy as np
        from numpy import dtype
        try:
            from numpy._core.multiarray import scalar
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import scalar
    except ImportError:
        return {}
    del np
    return {(mod, 'scalar'): scalar
            for mod in ('numpy.core.multiarray', 'numpy._core.multiarray')
            } | {('numpy', 'dtype'): dtype}


# Globals an Ultralytics pickle may name besides module classes.
_ALLOWED = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('builtins', 'set'): set,
    ('__builtin__', 'set'): set,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
    ('torch', 'Size'): torch.Size,
    **_numpy_globals(),
}
# YOLOv5 (models./utils.), Ultralytics 8.x (ultralytics.), torch.nn modules
_RECORD_PACKAGES = ('models.', 'utils.', 'ultralytics.', 'torch.nn.modules.')


class ModuleRecord:
    """Stand-in for any pickled ``nn.Module``: keeps its state, runs nothing.

    ``_class`` is the pickled class's full name, e.g.
    ``'ultralytics.nn.modules.block.C3k2'``.
    """

    def __init__(self, *args, **kwargs):
        self.__dict__['_class'] = None

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def children(self) -> Dict[str, 'ModuleRecord']:
        return self.__dict__.get('_modules') or {}


def short_class(rec) -> str:
    """``'C3k2'`` for a record of ``ultralytics.nn.modules.block.C3k2``."""
    name = getattr(rec, '_class', None) or type(rec).__name__
    return name.rsplit('.', 1)[-1]


_record_classes: Dict[Tuple[str, str], type] = {}


def _record_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _record_classes:
        _record_classes[key] = type(name, (ModuleRecord, ), {
            '__module__': module,
            '_class': f'{module}.{name}'
        })
    return _record_classes[key]


class _RestrictedUnpickler(pickle.Unpickler):

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module.startswith(_RECORD_PACKAGES):
            return _record_class(module, name)
        raise pickle.UnpicklingError(
            f'refusing to load {module}.{name}: not part of an Ultralytics '
            'checkpoint')


class _PickleModule:
    """``pickle_module`` for ``torch.load`` with the restricted unpickler."""
    Unpickler = _RestrictedUnpickler
    load = pickle.load
    __name__ = 'mmzsq_restricted_pickle'


def load_records(path: str, kind: str,
                 refuse: Callable[[str], Exception]) -> dict:
    """Unpickle the Ultralytics ``.pt`` at ``path`` into records.

    Args:
        path: The ``.pt`` file.
        kind: What the caller expects, for the not-found message
            (e.g. ``'YOLO11'``).
        refuse: Builds the exception raised, from the reason, when the file
            is not a readable Ultralytics checkpoint.

    Returns:
        The top-level dict (models as :class:`ModuleRecord` s).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'checkpoint not found: {path}. Give the path of an Ultralytics '
            f'{kind} .pt file.')
    if not zipfile.is_zipfile(path):
        raise refuse('not a torch zip archive')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=_PickleModule)
    except pickle.UnpicklingError as e:
        raise refuse(str(e)) from None
    if not isinstance(ckpt, dict):
        raise refuse(f'top level is {type(ckpt).__name__}')
    return ckpt


def not_ultralytics(path: str, kind: str, why: str, advice: str,
                    cls=ValueError) -> ValueError:
    """The error for a file that is not the Ultralytics ``kind`` checkpoint
    a converter expects: ``why``, and ``advice`` (which file to pass)."""
    return cls(f'{path} is not an Ultralytics {kind} checkpoint ({why}). '
               f'{advice}; an mmyolo/mmdet .pth needs no conversion.')


def load_model(path: str, kind: str,
               refuse: Callable[[str], Exception]) -> Tuple[object, str]:
    """(``ema`` or else ``model`` entry, its class name) of the Ultralytics
    ``.pt`` at ``path`` (see :func:`load_records`)."""
    model = load_records(path, kind, refuse)
    model = model.get('ema') or model.get('model')
    return model, getattr(model, '_class', None) or type(model).__name__


def checkpoint_meta(model, src: str, converter: str, **meta) -> dict:
    """The ``meta`` of a converted checkpoint: source file and sha256, the
    converter, ``meta``, and the class names as ``dataset_meta``."""
    with open(src, 'rb') as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    meta = dict(source=osp.basename(src), source_sha256=sha256,
                converter=converter, **meta)
    names = getattr(model, 'names', None)
    if isinstance(names, dict):
        names = [names[i] for i in sorted(names)]
    if names:
        meta['dataset_meta'] = dict(classes=tuple(str(n) for n in names))
    return meta


def named_tensors(rec: ModuleRecord,
                  prefix: str = '') -> List[Tuple[str, torch.Tensor]]:
    """What ``state_dict()`` would return for the pickled module tree."""
    out = []
    for attr in ('_parameters', '_buffers'):
        for k, v in (rec.__dict__.get(attr) or {}).items():
            if v is not None and k not in rec.__dict__.get(
                    '_non_persistent_buffers_set', set()):
                out.append((prefix + k, v.detach()))
    for k, child in rec.children.items():
        if child is not None:
            out.extend(named_tensors(child, f'{prefix}{k}.'))
    return out
