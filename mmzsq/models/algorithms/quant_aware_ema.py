"""EMA of a quantized model that leaves the fake-quant state alone."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage

from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.registry import MODELS


@MODELS.register_module()
class QuantAwareEMA(ExponentialMovingAverage):
    """:class:`mmengine.model.ExponentialMovingAverage` for models with
    LSQ fake quantizers (``ema_type='mmzsq.QuantAwareEMA'`` of mmengine's
    ``EMAHook``).

    Float weights (and, with ``update_buffers=True``, float buffers such as
    BN statistics) are averaged as mmengine does; the state of every
    :class:`LSQFakeQuantize` (step sizes, offsets, ``initialized``, bit
    range) is *copied* from the live model at each update.  A plain EMA
    would average step sizes with their values from before the
    initialisation (1.0, or a partial ``init_batches`` estimate) and, with
    ``update_buffers=True``, never copy the ``initialized`` flag after the
    first update, so the swapped-in EMA model (validation, test, the saved
    ``state_dict``) would re-initialise its quantizers.

    Args: as :class:`ExponentialMovingAverage` (``momentum`` default
    0.0002, ``interval``, ``device``, ``update_buffers``).
    """

    def __init__(self, model: nn.Module, momentum: float = 0.0002,
                 interval: int = 1, device: Optional[torch.device] = None,
                 update_buffers: bool = False) -> None:
        super().__init__(model, momentum, interval, device, update_buffers)

    def update_parameters(self, model: nn.Module) -> None:
        super().update_parameters(model)
        self.copy_quant_state(model)

    @torch.no_grad()
    def copy_quant_state(self, model: nn.Module) -> None:
        """Copy every fake quantizer's parameters and buffers from
        ``model`` (the live model) into the averaged copy."""
        live = dict(model.named_modules())
        for name, fq in self.module.named_modules():
            if not isinstance(fq, LSQFakeQuantize):
                continue
            src = live[name].state_dict(keep_vars=True)
            for key, dst in fq.state_dict(keep_vars=True).items():
                dst.data.copy_(src[key].data.to(dst.device))
