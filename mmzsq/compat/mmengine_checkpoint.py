"""Let mmengine 0.10.7 load its own checkpoints on torch >= 2.6.

torch 2.6 made ``torch.load`` default to ``weights_only=True``.  mmengine
0.10.7 calls ``torch.load(filename, map_location=...)`` and the checkpoints it
saves carry a ``message_hub`` of ``HistoryBuffer`` objects holding numpy
arrays, so resuming (and loading any mmengine-saved ``.pth``) fails with
``Weights only load failed``.

Rather than turning the safety check off, we add to torch's allow-list exactly
the classes that mmengine/mmdet/mmzsq checkpoints contain.  Arbitrary pickles
(e.g. an Ultralytics ``.pt``) are still refused by the default loader.

``HistoryBuffer.__getstate__`` also pickles its default statistic methods
(``min``/``max``/``current``/``mean``, which ``__setstate__`` re-creates
anyway) as ``getattr(HistoryBuffer, 'min')``; ``getattr`` is not allow-listed,
so we stop pickling those defaults instead of allowing it.
"""
import importlib
from typing import List

import numpy as np
import torch

# (module, attribute) pairs pickled into mmengine-style checkpoints.
_SAFE = [
    ('mmengine.logging.history_buffer', 'HistoryBuffer'),
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
]


def _numpy_globals() -> List[object]:
    out = []
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        out += [m._reconstruct, m.scalar]
    # dtype classes (numpy >= 1.25 pickles np.dtype('float64') through them)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return out


def safe_checkpoint_globals() -> List[object]:
    """The objects allow-listed for ``weights_only`` loading."""
    objs = []
    for mod, name in _SAFE:
        try:
            objs.append(getattr(importlib.import_module(mod), name))
        except (ImportError, AttributeError):
            pass
    return objs + _numpy_globals()


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the built-in methods."""
    from mmengine.logging.history_buffer import HistoryBuffer
    defaults = {n: getattr(HistoryBuffer, n)
                for n in ('min', 'max', 'current', 'mean')}
    state = dict(self.__dict__)
    state['statistics_methods'] = {
        k: v for k, v in self._statistics_methods.items()
        if defaults.get(k) is not v}
    return state


def patch_mmengine_checkpoint_loading() -> bool:
    """Register the allow-list; return False on torch without the API."""
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
        HistoryBuffer.__getstate__ = _history_buffer_getstate
    except ImportError:
        pass
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads unrestricted by default anyway
        return False
    add(safe_checkpoint_globals())
    return True
