"""Quantize a model by eager module replacement (no torch.fx tracing).

Every selected ``nn.Conv2d`` / ``nn.Linear`` (mmcv's wrappers included) gets
its class swapped *in place* for a quantized subclass of its own class, with
two children: ``weight_fake_quant`` and ``input_fake_quant``.  Parameter and
buffer names are unchanged, so float checkpoints load into the quantized
model, and everything else about the module (mmcv's empty-tensor handling,
``isinstance`` checks, init) keeps working.  BatchNorm is left unfused.
"""
import re
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger

from mmzsq.models.fake_quants import (LSQFakeQuantize, check_bits,
                                      check_init_batches, check_kernel,
                                      check_percentile, check_step_init)
from mmzsq.registry import MODELS

# final prediction layers of mmdet / mmyolo heads (kept in float, as LSQ
# keeps the last layer): YOLOv5/6/7 ``convs_pred``, YOLOv8/YOLO11
# ``cls_preds.{i}.2``/``reg_preds.{i}.2`` (the last 1x1 of each branch), RPN,
# RoI bbox/mask heads, dense heads' ``conv_cls``/``conv_reg``/``retina_*``.
DEFAULT_SKIP_PATTERNS = (
    r'(^|\.)convs_pred\.\d+$', r'(^|\.)(cls|reg)_preds\.\d+\.2$',
    r'(^|\.)rpn_cls$', r'(^|\.)rpn_reg$',
    r'(^|\.)fc_cls$', r'(^|\.)fc_reg$', r'(^|\.)conv_logits$',
    r'(^|\.)conv_cls$', r'(^|\.)conv_reg$', r'(^|\.)conv_obj$',
    r'(^|\.)retina_cls$', r'(^|\.)retina_reg$')


class _QuantMixin:
    """Marks a module whose class was swapped by :class:`EagerLSQQuantizer`."""


class _QuantConvMixin(_QuantMixin):

    def _conv_forward(self, input, weight, bias):
        return super()._conv_forward(
            self.input_fake_quant(input), self.weight_fake_quant(weight),
            bias)


class _QuantLinearMixin(_QuantMixin):

    def forward(self, input):
        return F.linear(
            self.input_fake_quant(input),
            self.weight_fake_quant(self.weight), self.bias)


_QCLASSES: Dict[type, type] = {}


def _quant_class(cls):
    if cls not in _QCLASSES:
        mixin = _QuantConvMixin if issubclass(cls, nn.Conv2d) \
            else _QuantLinearMixin
        _QCLASSES[cls] = type('Quant' + cls.__name__, (mixin, cls), {})
    return _QCLASSES[cls]


def is_quantized(module: nn.Module) -> bool:
    return isinstance(module, _QuantMixin)


@MODELS.register_module()
class EagerLSQQuantizer:
    """Insert LSQ weight + input-activation fake quantizers.

    Args:
        w_bits, a_bits (int): weight / activation bit-widths (2..8),
            independent (W4A8 etc.).
        skip_first (bool): keep the first quantizable layer (the one reading
            the image) in float.  Default True.
        skip_patterns (list[str]): regexes (``re.search`` on the module's
            qualified name); matching modules stay float.  Default: the final
            prediction layers of mmdet/mmyolo heads.
        skip_types (list[str]): class names kept in float.
        quantize_types (list[str]): class families quantized: ``'Conv2d'``
            and/or ``'Linear'`` (Swin qkv/proj/FFN/patch merging are Linear).
        w_per_channel (bool): per-output-channel weight step sizes.
        a_lsq_plus (bool): LSQ+ (asymmetric, learnable offset) activations.
        a_init_batches (int): forward passes the activation step sizes are
            initialised over (mean of the per-batch estimates; 1 = the first
            batch, as LSQ).  Weight step sizes always use the weights of the
            first pass.
        w_init (str): the weights' first step-size estimate, ``'lsq'``
            (``2*mean|w|/sqrt(Qp)``) or ``'mse'`` (least squared error of
            the quantized weights, see :class:`LSQFakeQuantize`) or
            ``'percentile'``.
        a_init (str): the same for the input activations (``'lsq'``,
            ``'mse'`` or ``'percentile'``: the range ends at the
            ``a_percentile`` quantile of ``|x|``, which follows the long
            tail of SiLU activations).  Ignored with ``a_lsq_plus``
            (min/max).
        a_percentile (float): that quantile, in ``[0.5, 1]``.
        kernel (str): the fake quantizers' training step, ``'compiled'``
            (default: ``torch.compile``'s fused loops for per-tensor
            symmetric tensors, about 3x faster than eager on large
            activations) or ``'eager'``; see :class:`LSQFakeQuantize`.
    """

    def __init__(self, w_bits: int = 8, a_bits: int = 8,
                 skip_first: bool = True,
                 skip_patterns: Optional[Sequence[str]] = None,
                 skip_types: Sequence[str] = (),
                 quantize_types: Sequence[str] = ('Conv2d', 'Linear'),
                 w_per_channel: bool = False, a_lsq_plus: bool = False,
                 a_init_batches: int = 1, w_init: str = 'lsq',
                 a_init: str = 'lsq', a_percentile: float = 0.9999,
                 kernel: str = 'compiled'):
        self.kernel = check_kernel(kernel, 'quantizer kernel')
        self.w_init = check_step_init(w_init, 'quantizer w_init')
        self.a_init = check_step_init(a_init, 'quantizer a_init')
        self.a_percentile = check_percentile(a_percentile,
                                             'quantizer a_percentile')
        self.w_bits = check_bits(w_bits, 'w_bits')
        self.a_bits = check_bits(a_bits, 'a_bits')
        self.skip_first = skip_first
        self.skip_patterns = [re.compile(p) for p in (
            DEFAULT_SKIP_PATTERNS if skip_patterns is None else skip_patterns)]
        self.skip_types = set(skip_types)
        bad = set(quantize_types) - {'Conv2d', 'Linear'}
        if bad:
            raise ValueError(f'quantize_types {sorted(bad)} unsupported; use '
                             "'Conv2d' and/or 'Linear'")
        self.base_types = tuple(
            {'Conv2d': nn.Conv2d, 'Linear': nn.Linear}[t]
            for t in quantize_types)
        self.w_per_channel = w_per_channel
        self.a_lsq_plus = a_lsq_plus
        self.a_init_batches = check_init_batches(a_init_batches,
                                                 'a_init_batches')

    def candidates(self, model: nn.Module) -> List[str]:
        return [n for n, m in model.named_modules()
                if isinstance(m, self.base_types)]

    def select(self, model: nn.Module) -> List[str]:
        """Names of the modules :meth:`prepare` quantizes."""
        names = self.candidates(model)
        if self.skip_first and names:
            names = names[1:]
        mods = dict(model.named_modules())
        return [
            n for n in names
            if type(mods[n]).__name__ not in self.skip_types
            and not any(p.search(n) for p in self.skip_patterns)
        ]

    def prepare(self, model: nn.Module) -> nn.Module:
        """Quantize ``model`` in place; return it."""
        names = self.select(model)
        mods = dict(model.named_modules())
        for n in names:
            m = mods[n]
            if is_quantized(m):
                continue
            m.__class__ = _quant_class(type(m))
            m.weight_fake_quant = LSQFakeQuantize(
                bits=self.w_bits, per_channel=self.w_per_channel,
                num_channels=m.weight.shape[0], ch_axis=0,
                init=self.w_init, kernel=self.kernel)
            m.input_fake_quant = LSQFakeQuantize(
                bits=self.a_bits, learn_offset=self.a_lsq_plus,
                init_batches=self.a_init_batches, init=self.a_init,
                percentile=self.a_percentile, kernel=self.kernel)
            m.weight_fake_quant.to(m.weight.device)
            m.input_fake_quant.to(m.weight.device)
        MMLogger.get_current_instance().info(
            f'EagerLSQQuantizer: W{self.w_bits}A{self.a_bits}, quantized '
            f'{len(names)} of {len(self.candidates(model))} Conv2d/Linear '
            'layers')
        return model


def fake_quantizers(model: nn.Module):
    """(name, LSQFakeQuantize) pairs of ``model``."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, LSQFakeQuantize)]
