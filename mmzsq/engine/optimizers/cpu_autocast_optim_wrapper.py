"""bf16 autocast for Stage II on CPU (MMEngine's AmpOptimWrapper is
CUDA / NPU / MLU only)."""
import contextlib

import torch
from mmengine.optim import OptimWrapper

from mmzsq.registry import OPTIM_WRAPPERS
from mmzsq.utils.errors import ConfigError


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """An :class:`~mmengine.optim.OptimWrapper` whose ``optim_context`` (the
    forward and the losses of ``train_step``) runs under
    ``torch.autocast('cpu', dtype)``: what ``AmpOptimWrapper(dtype=
    'bfloat16')`` does on CUDA.  bf16 keeps fp32's exponent range, so no
    loss scaling is needed; the backward and the optimizer step run outside
    the context, on fp32 weights.  ``tools/train.py --amp`` picks it when no
    GPU is present.
    """

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs):
        super().__init__(*args, **kwargs)
        if dtype not in ('bfloat16', 'float16'):
            raise ConfigError(
                f"optim_wrapper.dtype={dtype!r}: CPU autocast takes "
                "'bfloat16' (or 'float16')")
        self.cast_dtype = getattr(torch, dtype)

    @contextlib.contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=self.cast_dtype):
            yield
