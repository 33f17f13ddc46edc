"""Deploy-time quantized Conv2d / Linear whose ONNX export is QDQ.

A :class:`QDQConv2d` holds what a BN-folded LSQ conv *is* after training:
integer weight codes, one positive step size per output channel, a float
bias and the input activation step size.  Its forward uses
``torch.fake_quantize_per_tensor_affine`` / ``..._per_channel_affine``,
which torch's ONNX exporter turns into ``QuantizeLinear`` /
``DequantizeLinear`` pairs (weights int8 with zero-point 0; activations
see below).

Bit-widths below 8 are carried in the 8-bit containers: the weight codes are
already in the ``b``-bit range; activations are clipped to
``[s*Qn, s*Qp]`` (a ``Clip`` node before ``QuantizeLinear``), so the 8-bit
codes are exactly the student's ``b``-bit codes.

Activations are exported as **uint8** whatever the student's sign: a signed
student grid ``[-128, 127]*s`` is uint8 with zero-point 128 (the same codes
shifted).  onnxruntime's x86 CPU kernels are u8 activations x s8 weights:
its QDQ rules only form ``QLinearConv`` / ``QLinearMul`` / ... when every
activation around the op has that one type (int8 activations are allowed
on ARM only).

``out_scale`` (optional) adds an extra uint8 quantization of the conv output
(before the activation function).  It is *not* part of the LSQ student:
onnxruntime only rewrites ``DQ -> Conv -> Q`` into an int8 ``QLinearConv``
when the conv output is quantized, so it is what makes the CPU int8
speed-up possible; it is calibrated (min/max) by
:func:`mmzsq.deployment.calibrate_outputs`.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

INT8_MIN, INT8_MAX = -128, 127


def asymmetric_uint8(lo: float, hi: float):
    """(scale, zero_point) of a uint8 grid covering ``[lo, hi]`` and 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    return scale, int(min(max(round(-lo / scale), 0), 255))


class _QDQMixin:

    def _init_qdq(self, w_codes, w_scale, bias, a_scale, a_qmin, a_qmax):
        self.register_buffer('w_codes', w_codes.float())
        self.register_buffer('w_scale', w_scale.float().reshape(-1))
        self.register_buffer('bias', None if bias is None else bias.float())
        self.register_buffer('a_scale', torch.tensor(float(a_scale)))
        self.a_step = float(a_scale)  # python float: a constant when traced
        self.a_qmin, self.a_qmax = int(a_qmin), int(a_qmax)
        self.out_scale: Optional[float] = None
        self.out_zero_point: int = 0
        self.quantize = True  # False: float (no QDQ) forward, same weights

    def set_output_quant(self, lo: float, hi: float):
        """uint8 output quantization covering ``[lo, hi]`` (and 0)."""
        self.out_scale, self.out_zero_point = asymmetric_uint8(lo, hi)

    def float_weight(self):
        shape = [-1] + [1] * (self.w_codes.dim() - 1)
        return self.w_codes * self.w_scale.reshape(shape)

    def _qdq_input(self, x):
        s = self.a_step
        # unsigned student range [0, 255] -> uint8, zero-point 0; signed
        # [-128, 127] -> uint8, zero-point 128 (see module docstring)
        zp = 0 if self.a_qmin >= 0 else 128
        if (self.a_qmin, self.a_qmax) != (-zp, 255 - zp):
            x = x.clamp(s * self.a_qmin, s * self.a_qmax)  # b<8: clip
        return torch.fake_quantize_per_tensor_affine(x, s, zp, 0, 255)

    def _qdq_weight(self):
        s = self.w_scale
        return torch.fake_quantize_per_channel_affine(
            self.float_weight(), s, torch.zeros_like(s, dtype=torch.int32),
            0, INT8_MIN, INT8_MAX)

    def _qdq_output(self, y):
        if self.out_scale is None or not self.quantize:
            return y
        return torch.fake_quantize_per_tensor_affine(
            y, self.out_scale, self.out_zero_point, 0, 255)

    def _inputs(self, x):
        if not self.quantize:
            return x, self.float_weight()
        return self._qdq_input(x), self._qdq_weight()


class QDQConv2d(_QDQMixin, nn.Module):
    """BN-folded quantized conv (see module docstring)."""

    def __init__(self, conv: nn.Conv2d, w_codes, w_scale, bias, a_scale,
                 a_qmin, a_qmax):
        super().__init__()
        if conv.padding_mode != 'zeros':
            raise ValueError(f'padding_mode={conv.padding_mode!r} is not '
                             'exportable as QDQ; only zeros padding')
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.in_channels, self.out_channels = conv.in_channels, \
            conv.out_channels
        self._init_qdq(w_codes, w_scale, bias, a_scale, a_qmin, a_qmax)

    def forward(self, x):
        x, w = self._inputs(x)
        y = F.conv2d(x, w, self.bias, self.stride, self.padding,
                     self.dilation, self.groups)
        return self._qdq_output(y)


class QDQLinear(_QDQMixin, nn.Module):
    """Quantized linear layer (see module docstring)."""

    def __init__(self, linear: nn.Linear, w_codes, w_scale, bias, a_scale,
                 a_qmin, a_qmax):
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self._init_qdq(w_codes, w_scale, bias, a_scale, a_qmin, a_qmax)

    def forward(self, x):
        x, w = self._inputs(x)
        return self._qdq_output(F.linear(x, w, self.bias))
