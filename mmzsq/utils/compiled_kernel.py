"""A ``torch.compile``'d elementwise / reduction kernel with an eager
fallback, for hot loops that eager PyTorch runs as many passes (the LSQ
training step).

``torch.compile`` (inductor: C++/OpenMP on CPU, Triton on CUDA) fuses such a
function into one loop.  It needs a C++ compiler (CPU) or Triton (CUDA) at
run time, so each kernel is tried once per device type on a small example
and compared with the uncompiled function; where that fails, one warning is
logged and the caller uses its eager path.
"""
from typing import Callable, Dict

import torch
from mmengine.logging import print_log


class CompiledKernel:
    """``fn`` compiled with ``dynamic=True`` on first use (one kernel for
    every shape; inductor's disk cache makes later processes' compiles
    short).

    Args:
        fn: the function (tensors and Python scalars in, tensors out).
        example: ``device -> args`` of a small call, run without grad, whose
            compiled and eager outputs must be equal.
        what: its name in the warning.
        fix: how to turn the compiled kernel off, for the warning.
    """

    def __init__(self, fn: Callable, example: Callable, what: str, fix: str):
        self.fn, self.example, self.what, self.fix = fn, example, what, fix
        self._compiled = None
        self._ready: Dict[str, bool] = {}

    def __call__(self, *args):
        if self._compiled is None:
            self._compiled = torch.compile(self.fn, dynamic=True)
        return self._compiled(*args)

    def ready(self, device) -> bool:
        """Whether the compiled kernel runs (and matches) on ``device``'s
        type; tried once per type."""
        kind = torch.device(device).type
        if kind not in self._ready:
            try:
                self._ready[kind] = self._matches(device)
                if not self._ready[kind]:
                    raise RuntimeError('compiled values differ from eager')
            except Exception as e:  # no compiler / backend: stay eager
                self._ready[kind] = False
                msg = str(e).splitlines()[0] if str(e) else ''
                print_log(
                    f'{self.what}: the compiled kernel does not run on '
                    f'{kind} ({type(e).__name__}: {msg}); using the eager '
                    f'one ({self.fix} skips this check)', logger='current',
                    level=30)
        return self._ready[kind]

    def _matches(self, device) -> bool:
        with torch.no_grad():
            args = self.example(device)
            got, want = self(*args), self.fn(*args)
        got = got if isinstance(got, (tuple, list)) else (got, )
        want = want if isinstance(want, (tuple, list)) else (want, )
        return all(torch.allclose(g, w, rtol=1e-5, atol=1e-6)
                   for g, w in zip(got, want))
