"""Calibrate the optional uint8 output quantizers of QDQ layers (min/max).

See :mod:`mmzsq.deployment.qdq_layers`: onnxruntime's CPU int8 kernels
(``QLinearConv``) need the conv output quantized too; LSQ students do not
learn that step size, so it is measured here on a few batches.
"""
from typing import Callable, Iterable

import torch
import torch.nn as nn

from .qdq_layers import _QDQMixin


@torch.no_grad()
def calibrate_outputs(model: nn.Module, forward: Callable[[object], object],
                      batches: Iterable) -> int:
    """Run ``forward(batch)`` over ``batches``; set every QDQ layer's output
    quantization to the observed [min, max].  Returns the layer count."""
    layers = [m for m in model.modules() if isinstance(m, _QDQMixin)]
    stats, handles = {}, []

    def hook(m, inp, out):
        lo, hi = float(out.min()), float(out.max())
        old = stats.get(m, (lo, hi))
        stats[m] = (min(lo, old[0]), max(hi, old[1]))

    for m in layers:
        m.out_scale = None
        handles.append(m.register_forward_hook(hook))
    try:
        n = 0
        for batch in batches:
            forward(batch)
            n += 1
        if not n:
            raise ValueError('calibrate_outputs: no calibration batches')
    finally:
        for h in handles:
            h.remove()
    for m in layers:
        if m in stats:
            m.set_output_quant(*stats[m])
    return len(stats)
