"""A detector's backbone, neck and dense-head module under ``torch.compile``,
switched on for the calls made inside a ``with`` block.

In eager PyTorch each fake quantizer of a quantized student is a call of its
own (Python, autograd nodes, one pass over the tensor each way), and the
BatchNorm and activation around it are passes of their own too.  Compiled as
one graph (inductor: C++/OpenMP on CPU, Triton on CUDA), the quantizers
(:meth:`LSQFakeQuantize._traced`) are fused with the layers around them.
Measured on YOLOv5n W4A8, 160 px, batch 8, 1 thread: forward + backward of
the quantized student 97 + 135 ms eager, 64 + 122 ms compiled (the float
student: 69 + 107 ms eager).

The parts are compiled on first use (minutes on 2 CPU cores; inductor's disk
cache makes later processes' compiles short) and only run compiled inside
the block, so evaluation, BN re-estimation and the first (initialising)
steps stay eager.
"""
import contextlib
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch._dynamo.exc import TorchDynamoException

from mmzsq.utils.errors import ConfigError

# the parts a detector's graph is split into (the rest, e.g. RPN proposals
# and RoI heads, has data-dependent shapes and stays eager)
PARTS = ('backbone', 'neck', 'bbox_head.head_module')


def _get(obj, dotted: str) -> Optional[nn.Module]:
    for name in dotted.split('.'):
        obj = getattr(obj, name, None)
    return obj if isinstance(obj, nn.Module) else None


#: ``compile='auto'`` compiles runs of at least this many training (Stage
#: II) or pixel-update (Stage I) steps.  A compile costs about 100-170 s on
#: 2 CPU cores (about 30 s from inductor's disk cache) and saves 15-25 % of
#: a step: a 320-px Stage II run repays it after about 1300 steps with a
#: cold cache, 400 with a warm one (docs/benchmarks.md); the shipped
#: 2000-iteration runs are past that, tests and demos are not.
AUTO_MIN_STEPS = 1000


class CompiledParts:
    """Compiles ``detector``'s :data:`PARTS` (those it has).

    Args:
        detector: the model whose parts are compiled (in place: the module
            objects stay the same, so hooks, recorders and checkpoints see
            no difference), or several models (e.g. a student and its
            frozen teacher, whose no-grad calls compile to inference
            graphs).
        options: ``torch.compile`` keyword arguments (``mode``,
            ``dynamic``, ``backend``, ...).

    :meth:`run` calls a function with the parts' calls routed to their
    compiled versions; a compile error in it (no C++ compiler, an
    unsupported operation) is one warning naming ``key``, the call is
    repeated eagerly and the parts stay eager from then on.
    """

    @staticmethod
    def resolve(options: Union[bool, Dict, str], steps: int):
        """A ``compile`` config value for a run of ``steps`` steps:
        ``'auto'`` is ``True`` from :data:`AUTO_MIN_STEPS` steps on, else
        ``False``; other values are returned as they are."""
        if isinstance(options, str) and options == 'auto':
            return steps >= AUTO_MIN_STEPS
        return options

    @classmethod
    def build(cls, detector: Union[nn.Module, Sequence[nn.Module]],
              options: Union[bool, Dict],
              key: str) -> Optional['CompiledParts']:
        """From a config value: ``False`` / ``None`` (off), ``True`` or a
        dict of ``torch.compile`` arguments; anything else is a
        ConfigError naming ``key``."""
        if options is None or options is False:
            return None
        if options is True:
            options = dict()
        if not isinstance(options, dict):
            raise ConfigError(
                f"{key} must be True, False, 'auto' or a dict of "
                'torch.compile arguments (e.g. dict(mode="max-autotune")), '
                f'got {options!r}')
        return cls(detector, options, key)

    def __init__(self, detector: Union[nn.Module, Sequence[nn.Module]],
                 options: Dict, key: str = 'compile'):
        detectors = [detector] if isinstance(detector, nn.Module) \
            else list(detector)
        self.names = [n for n in PARTS if _get(detectors[0], n) is not None]
        self.modules: List[nn.Module] = [
            _get(d, n) for d in detectors for n in PARTS
            if _get(d, n) is not None]
        self.options, self.key = dict(options), key
        self.enabled = True
        self._fns = [None] * len(self.modules)
        self._extra: Dict[int, nn.Module] = {}
        self.active = False  # inside run()

    def function(self, module: nn.Module):
        """``module`` (e.g. a loss on the parts' outputs) compiled with
        the same options, once; for calls inside the block."""
        key = id(module)
        if key not in self._extra:
            self._extra[key] = torch.compile(module, **self.options)
        return self._extra[key]

    def run(self, fn: Callable, *args, before_retry: Callable = None):
        """``fn(*args)`` with the parts compiled (eager once compiling has
        failed); ``before_retry()`` runs before the eager repeat of a
        failed attempt (e.g. to rewind a random generator)."""
        if not self.enabled:
            return fn(*args)
        try:
            with self._routed():
                return fn(*args)
        except TorchDynamoException as err:
            self.enabled = False
            msg = str(err).strip().splitlines()
            print_log(
                f'torch.compile of {", ".join(self.names)} failed '
                f'({type(err).__name__}: {msg[0] if msg else ""}); going '
                f'on eagerly ({self.key}=False skips the attempt)',
                logger='current', level=30)
            if before_retry is not None:
                before_retry()
            return fn(*args)

    @contextlib.contextmanager
    def _routed(self):
        for i, m in enumerate(self.modules):
            if self._fns[i] is None:
                self._fns[i] = torch.compile(m._call_impl, **self.options)
            m._compiled_call_impl = self._fns[i]
        self.active = True
        try:
            yield
        finally:
            for m in self.modules:
                m._compiled_call_impl = None
            self.active = False
