"""Patch-similarity-entropy prior of PSAQ-ViT, for LayerNorm models (Swin).

For every hooked transformer block, the pairwise cosine similarities of its
output patch tokens are estimated as a density by a Gaussian KDE; real images
give diverse (high-entropy) similarity distributions, so the loss is the
*negative* differential entropy, summed over blocks (minimising it maximises
the entropy)."""
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmzsq.registry import MODELS


@MODELS.register_module()
class PatchSimilarityEntropyLoss(nn.Module):

    def __init__(self, module_types: Sequence[str] = ('SwinBlock',
                                                      'BaseTransformerLayer'),
                 max_patches: int = 196, num_bins: int = 100,
                 bandwidth: float = 0.05, loss_weight: float = 1.0):
        super().__init__()
        self.module_types = tuple(module_types)
        self.max_patches = max_patches
        self.num_bins = num_bins
        self.bandwidth = bandwidth
        self.loss_weight = loss_weight
        self._handles: list = []
        self._losses: list = []

    def register(self, model: nn.Module) -> 'PatchSimilarityEntropyLoss':
        self.remove()
        for m in model.modules():
            if type(m).__name__ in self.module_types:
                self._handles.append(m.register_forward_hook(self._hook))
        if not self._handles:
            raise ValueError(
                f'PatchSimilarityEntropyLoss: no module of type '
                f'{self.module_types} in the model; set module_types to its '
                'transformer block class names')
        return self

    @property
    def num_layers(self) -> int:
        return len(self._handles)

    def entropy(self, tokens: Tensor) -> Tensor:
        """Differential entropy of the patch-similarity density, per image.

        tokens: [B, N, C] -> [B]"""
        b, n, _ = tokens.shape
        if n > self.max_patches:  # fixed stride subsample, deterministic
            idx = torch.linspace(0, n - 1, self.max_patches,
                                 device=tokens.device).long()
            tokens = tokens[:, idx]
            n = self.max_patches
        f = F.normalize(tokens.float(), dim=-1)
        sim = f @ f.transpose(1, 2)  # [B, N, N]
        iu = torch.triu_indices(n, n, offset=1, device=sim.device)
        s = sim[:, iu[0], iu[1]]  # [B, M]
        grid = torch.linspace(-1, 1, self.num_bins, device=s.device)
        h = self.bandwidth
        # KDE evaluated on the grid: [B, K]
        dens = torch.exp(-0.5 * ((grid[None, :, None] - s[:, None, :]) / h)
                         .pow(2)).mean(-1) / (h * math.sqrt(2 * math.pi))
        dx = 2.0 / (self.num_bins - 1)
        p = dens * dx
        p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
        return -(p * torch.log(p.clamp_min(1e-12))).sum(-1) + math.log(dx)

    def _hook(self, module, inputs, output) -> None:
        x = output[0] if isinstance(output, (tuple, list)) else output
        if x.dim() == 4:  # [B, C, H, W] -> tokens
            x = x.flatten(2).transpose(1, 2)
        self._losses.append(-self.entropy(x))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles, self._losses = [], []

    def reset(self) -> None:
        self._losses = []

    def __del__(self):
        try:
            self.remove()
        except Exception:
            pass

    def forward(self, *args, reduction: str = 'mean', **kwargs) -> Tensor:
        if not self._losses:
            raise RuntimeError('PatchSimilarityEntropyLoss: run the model '
                               'first (and register() it)')
        loss = torch.stack(self._losses).sum(0)  # [B]
        self._losses = []
        if reduction == 'mean':
            loss = loss.mean()
        return self.loss_weight * loss
