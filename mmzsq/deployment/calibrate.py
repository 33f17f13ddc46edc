"""Calibrate the optional uint8 output quantizers of QDQ layers (min/max).

See :mod:`mmzsq.deployment.qdq_layers`: onnxruntime's CPU int8 kernels
(``QLinearConv``) need the conv output quantized too; LSQ students do not
learn that step size, so it is measured here on a few batches, by torch's
``MinMaxObserver`` on each layer's output.  (This runs on the PyTorch deploy
model, before export: two-stage detectors calibrate through mmdet's full
``predict``, whose RoI stage runs in Python between the graphs, so
onnxruntime's calibrator, which the activations between the convs use, see
:func:`mmzsq.deployment.int8_activations.ort_min_max`, cannot see it.)
"""
from typing import Callable, Iterable

import torch
import torch.nn as nn
from torch.ao.quantization.observer import MinMaxObserver

from .qdq_layers import _QDQMixin


@torch.no_grad()
def calibrate_outputs(model: nn.Module, forward: Callable[[object], object],
                      batches: Iterable) -> int:
    """Run ``forward(batch)`` over ``batches``; set every QDQ layer's output
    quantization to the observed [min, max].  Returns the layer count."""
    layers = [m for m in model.modules() if isinstance(m, _QDQMixin)]
    observers = {m: MinMaxObserver() for m in layers}

    def observe(m, inp, out):
        observers[m](out)  # the output itself is left as it is

    handles = []
    for m in layers:
        m.out_scale = None
        handles.append(m.register_forward_hook(observe))
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
    seen = [(m, o) for m, o in observers.items()
            if torch.isfinite(o.min_val)]
    for m, o in seen:
        m.set_output_quant(float(o.min_val), float(o.max_val))
    return len(seen)
