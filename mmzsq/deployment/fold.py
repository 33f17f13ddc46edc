"""Fold BatchNorm into the preceding convs of a quantized student.

Choice (keeps the learned integer weight codes): for a conv with LSQ weight
step size ``s_w`` (per-tensor or per-channel) followed by BN
``(gamma, beta, mu, sigma)``, ``k = gamma / sigma`` per output channel,

    BN(conv(x, s_w*q)) = conv(x, (s_w*k) * q) + beta - k*mu (+ k*b)

so the folded weight is the *same codes* ``q = clamp(round(W/s_w))`` with
the per-channel step size ``s_w*|k|`` (ONNX scales must be positive, so the
sign of ``k`` goes into the codes: ``q' = sign(k)*q``).  Folding first and
re-quantizing the folded weight with a re-estimated step would change codes;
quantizing first and folding the scale changes nothing but float rounding.
The only inexact case: ``q = -2^(b-1)`` on a channel with ``k < 0`` gives
``+2^(b-1)``, which for ``b = 8`` is clamped to 127 (counted, reported).

Conv/BN pairs are found by running the model once with hooks: a BN whose
input tensor is the output of a conv is that conv's BN (ConvModule, ResNet's
conv1/norm1, downsample Sequential...).
"""
import copy
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from torch.nn.modules.batchnorm import _BatchNorm

from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.models.quantizers.eager_quantizer import is_quantized
from mmzsq.utils.errors import UserError

from .qdq_layers import QDQConv2d, QDQLinear


def conv_bn_pairs(model: nn.Module,
                  forward: Callable[[nn.Module], object]) -> Dict[str, str]:
    """``{bn_name: conv_name}`` for every BN fed directly by a conv."""
    conv_out, pairs, handles = {}, {}, []
    names = {m: n for n, m in model.named_modules()}

    def conv_hook(m, inp, out):
        conv_out[id(out)] = (names[m], out)  # keep ``out`` alive: ids unique

    def bn_hook(m, inp):
        hit = conv_out.get(id(inp[0]))
        if hit is not None and hit[1] is inp[0]:
            pairs[names[m]] = hit[0]

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, _BatchNorm):
            handles.append(m.register_forward_pre_hook(bn_hook))
    try:
        with torch.no_grad():
            forward(model)
    finally:
        for h in handles:
            h.remove()
    return pairs


def _bn_affine(bn: _BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """(k, c) with ``bn(y) = k*y + c`` per channel (eval mode)."""
    sigma = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(sigma)
    beta = bn.bias if bn.affine else torch.zeros_like(sigma)
    k = gamma / sigma
    return k.detach(), (beta - k * bn.running_mean).detach()


def _step(fq: LSQFakeQuantize) -> torch.Tensor:
    """The step size the LSQ forward uses: ``|scale| + eps``."""
    return (fq.scale.detach().abs() + fq.eps).float()


def check_exportable(student: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Quantized layers of ``student``; :class:`UserError` if none, if a
    quantizer never saw data, or uses what QDQ int8 cannot express."""
    layers = [(n, m) for n, m in student.named_modules() if is_quantized(m)]
    if not layers:
        raise UserError('the model has no quantized layers (a float '
                        'detector); export a checkpoint of a configs/zsq/ '
                        'config trained by tools/train.py')
    for n, m in layers:
        for fq in (m.weight_fake_quant, m.input_fake_quant):
            if fq.bits > 8 or fq.bits < 2:
                raise UserError(f'{n}: {fq.bits}-bit quantizer; ONNX QDQ '
                                'export supports 2..8 bits (8-bit containers)')
            if not int(fq.initialized[0]):
                raise UserError(
                    f'{n}: step sizes never initialised (a float checkpoint '
                    'or an untrained quantized model); export a checkpoint '
                    'saved by tools/train.py with a configs/zsq/ config')
        if m.input_fake_quant.learn_offset:
            raise UserError(f'{n}: LSQ+ real-valued activation offsets have '
                            'no integer zero-point; export a model trained '
                            'with a_lsq_plus=False')
        if m.weight_fake_quant.learn_offset or not m.weight_fake_quant.signed:
            raise UserError(f'{n}: only signed symmetric weight quantizers '
                            'are exportable')
    return layers


def _set(root: nn.Module, name: str, new: nn.Module):
    parent, _, attr = name.rpartition('.')
    setattr(root.get_submodule(parent) if parent else root, attr, new)


@torch.no_grad()
def _folded_float(m: nn.Module, w: torch.Tensor, k: torch.Tensor,
                  bias: torch.Tensor) -> nn.Conv2d:
    """A float conv (e.g. the stem) with its BN folded in."""
    plain = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                      m.stride, m.padding, m.dilation, m.groups, True,
                      m.padding_mode)
    plain.weight.copy_(w * k.reshape(-1, 1, 1, 1))
    plain.bias.copy_(bias)
    return plain


def _folded_quantized(m: nn.Module, w: torch.Tensor, k: torch.Tensor,
                      bias: torch.Tensor) -> Tuple[nn.Module, int]:
    """(QDQ layer, codes clamped): the student's weight codes kept, the BN
    scale moved into the per-channel step (its sign into the codes)."""
    c_out = w.shape[0]
    wq, aq = m.weight_fake_quant, m.input_fake_quant
    s_w = _step(wq).expand(c_out) if wq.scale.numel() == 1 \
        else _step(wq).reshape(c_out)
    view = [-1] + [1] * (w.dim() - 1)
    q = (w / s_w.reshape(view)).clamp(wq.quant_min, wq.quant_max).round()
    q = q * torch.where(k < 0, -1.0, 1.0).reshape(view)
    flips = int((q > 127).sum())
    q = q.clamp(-128, 127)
    dead = k.abs() < 1e-12  # gamma == 0: output is the bias only
    q[dead] = 0
    s_new = torch.where(dead, s_w, s_w * k.abs())
    cls = QDQConv2d if isinstance(m, nn.Conv2d) else QDQLinear
    return cls(m, q, s_new, bias, _step(aq), aq.quant_min,
               aq.quant_max), flips


@torch.no_grad()
def fold_student(student: nn.Module,
                 forward: Callable[[nn.Module], object]) -> nn.Module:
    """A copy of ``student`` (eval) with BN folded and every quantized layer
    replaced by :class:`QDQConv2d` / :class:`QDQLinear`.

    ``forward(model)`` runs the model once (used to find conv->BN pairs).
    """
    check_exportable(student)
    model = copy.deepcopy(student).eval()
    pairs = conv_bn_pairs(model, forward)
    bn_of = {c: b for b, c in pairs.items()}
    mods = dict(model.named_modules())
    flips = 0
    for name, m in list(mods.items()):
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or (
                not is_quantized(m) and name not in bn_of):
            continue  # float layer without BN (e.g. prediction convs)
        w = m.weight.detach().float()
        c_out = w.shape[0]
        b = m.bias.detach().float() if m.bias is not None \
            else torch.zeros(c_out)
        k, c = torch.ones(c_out), torch.zeros(c_out)
        if name in bn_of:
            k, c = _bn_affine(mods[bn_of[name]])
        if is_quantized(m):
            new, n = _folded_quantized(m, w, k, k * b + c)
            flips += n
        else:
            new = _folded_float(m, w, k, k * b + c)
        _set(model, name, new)
    for bn in pairs:
        _set(model, bn, nn.Identity())
    MMLogger.get_current_instance().info(
        f'fold_student: folded {len(pairs)} BN layers; {flips} weight codes '
        'clamped -2^(b-1) -> 127 by a negative BN scale')
    model.num_code_flips = flips
    return model
