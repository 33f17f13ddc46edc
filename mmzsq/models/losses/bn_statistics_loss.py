"""BatchNorm-statistics prior (DeepInversion / ZeroQ), paper Eq. 6 ``L_BN``."""
import math
from typing import List, Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmzsq.registry import MODELS


class _Moments(torch.autograd.Function):
    """``(x.mean(dims), (x * x).mean(dims))`` with the gradient in one
    fused pass, ``dL/dx = (dL/dmean + 2 x dL/dE[x^2]) / n`` (``addcmul``):
    autograd's chain (two mean backwards, the square's two products, their
    sum) is ~6x the forward on CPU, per BatchNorm layer and step."""

    @staticmethod
    def forward(ctx, x, dims):
        ctx.save_for_backward(x)
        ctx.dims = dims
        return x.mean(dims), (x * x).mean(dims)

    @staticmethod
    def backward(ctx, g_mean, g_sq_mean):
        x, = ctx.saved_tensors
        shape = [1 if d in ctx.dims else n for d, n in enumerate(x.shape)]
        n = x.numel() // max(math.prod(shape), 1)
        g_mean = torch.zeros(shape, dtype=x.dtype, device=x.device) \
            if g_mean is None else (g_mean / n).reshape(shape)
        if g_sq_mean is None:
            return g_mean.expand_as(x).clone(), None
        return torch.addcmul(g_mean, x, (2 * g_sq_mean / n).reshape(shape)), \
            None


@MODELS.register_module()
class BNStatisticsLoss(nn.Module):
    """Distance between the batch statistics of every BatchNorm's *input* and
    the layer's running statistics.

    Per layer ``||mu(x) - running_mean||_2 + ||var(x) - running_var||_2`` over
    channels, summed over layers (``first_bn_weight`` multiplies the first).

    Usage::

        bn_loss = BNStatisticsLoss().register(teacher)
        teacher(x)            # hooks record the per-layer losses
        loss = bn_loss()      # sum of what the last forward recorded
        bn_loss.remove()      # (also on garbage collection / ``with``)
    """

    def __init__(self, first_bn_weight: float = 1.0, loss_weight: float = 1.0,
                 per_image: bool = False):
        super().__init__()
        self.first_bn_weight = first_bn_weight
        self.loss_weight = loss_weight
        self.per_image = per_image
        self._handles: list = []
        # per recorded layer: (mean, E[x^2], running mean, running var)
        self._losses: List[tuple] = []
        self._seg_key, self._seg = None, None  # see _segments

    # -- hooks --------------------------------------------------------------
    def register(self, model: nn.Module) -> 'BNStatisticsLoss':
        self.remove()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and \
                    m.running_mean is not None:
                self._handles.append(m.register_forward_hook(self._hook))
        if not self._handles:
            raise ValueError(
                'BNStatisticsLoss: the model has no BatchNorm with running '
                'statistics; use PatchSimilarityEntropyLoss for LayerNorm '
                'models (Swin/ViT) instead')
        return self

    @property
    def num_layers(self) -> int:
        return len(self._handles)

    def _hook(self, module: nn.Module, inputs, output) -> None:
        x = inputs[0].float()
        rm = module.running_mean.float()
        rv = module.running_var.float()
        # per image: statistics of each image alone -> [B]
        dims = list(range(2, x.dim())) if self.per_image else \
            [0] + list(range(2, x.dim()))
        # E[x^2] - E[x]^2: the same (biased) variance as x.var to ~1e-7,
        # at a fraction of its cost on CPU (measured: var was 8-15x the BN
        # layer's own time); both moments in one autograd node
        if torch.compiler.is_compiling():
            # traced: the compiler fuses autograd's chain itself, and a
            # graph without an autograd.Function is cached on disk
            mean, sq_mean = x.mean(dims), (x * x).mean(dims)
        else:
            mean, sq_mean = _Moments.apply(x, dims)
        # the distances are taken for all layers at once in forward(): per
        # layer, two norms and their arithmetic were ~10 tiny autograd
        # nodes each (57 layers on YOLOv5n)
        self._losses.append((mean, sq_mean, rm, rv))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._losses = []

    def reset(self) -> None:
        self._losses = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def __del__(self):
        try:
            self.remove()
        except Exception:
            pass

    # -- value --------------------------------------------------------------
    def _segments(self, sizes, device) -> Tensor:
        """Layer index of every concatenated channel (cached)."""
        key = (tuple(sizes), str(device))
        if self._seg_key != key:
            self._seg_key = key
            self._seg = torch.repeat_interleave(
                torch.arange(len(sizes), device=device),
                torch.tensor(sizes, device=device))
        return self._seg

    def forward(self, *args, **kwargs) -> Optional[Tensor]:
        if not self._losses:
            raise RuntimeError('BNStatisticsLoss: run the model first (and '
                               'register() it) before asking for the loss')
        means, sq_means, rms, rvs = zip(*self._losses)
        self._losses = []
        # all layers' channels side by side ([C_total], per image
        # [B, C_total]); per layer ||mean - rm|| + ||var - rv||
        mean, sq_mean = torch.cat(means, -1), torch.cat(sq_means, -1)
        var = (sq_mean - mean * mean).clamp(min=0)
        dm, dv = mean - torch.cat(rms), var - torch.cat(rvs)
        seg = self._segments([len(r) for r in rms], mean.device)
        shape = mean.shape[:-1] + (len(rms), )
        sq = mean.new_zeros(shape).index_add_(-1, seg, dm * dm)
        sv = mean.new_zeros(shape).index_add_(-1, seg, dv * dv)
        # (a zero distance: value 0 and no gradient, as norm's, not NaN)
        per_layer = sq.clamp(min=1e-30).sqrt() + sv.clamp(min=1e-30).sqrt()
        w = torch.ones(len(rms), device=mean.device)
        w[0] = self.first_bn_weight
        return self.loss_weight * (per_layer * w).sum(-1)
