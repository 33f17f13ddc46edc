"""Tile baseline (paper Table 5): a uniform grid, one random box per cell."""
from typing import List, Sequence

import torch

from mmzsq.registry import TASK_UTILS
from .random_box_sampler import NormLabels


@TASK_UTILS.register_module()
class TileBoxSampler:
    """Grid of ``grid`` (rows, cols) cells -- or a grid drawn per image from
    ``grids`` -- with one box per cell, w, h ~ U(wh_range) of the cell, placed
    uniformly inside it, class ~ U{0..C-1}."""

    def __init__(self, grid: Sequence[int] = (2, 2), grids=None,
                 wh_range=(0.5, 1.0)):
        self.grids = [tuple(x) for x in grids] if grids else [tuple(grid)]
        self.wh_range = tuple(wh_range)

    def __call__(self, batch_size: int, num_classes: int,
                 g: torch.Generator) -> List[NormLabels]:
        out = []
        lo, hi = self.wh_range
        for _ in range(batch_size):
            k = int(torch.randint(0, len(self.grids), (1, ), generator=g))
            rows, cols = self.grids[k]
            boxes = []
            for r in range(rows):
                for c in range(cols):
                    cw, ch = 1.0 / cols, 1.0 / rows
                    w, h = (lo + (hi - lo) * torch.rand(2, generator=g)) * \
                        torch.tensor([cw, ch])
                    x0 = c * cw + (cw - w) * torch.rand(1, generator=g)
                    y0 = r * ch + (ch - h) * torch.rand(1, generator=g)
                    boxes.append(torch.cat([x0, y0, x0 + w, y0 + h]))
            boxes = torch.stack(boxes).float()
            labels = torch.randint(0, num_classes, (len(boxes), ),
                                   generator=g)
            out.append((boxes, labels))
        return out
