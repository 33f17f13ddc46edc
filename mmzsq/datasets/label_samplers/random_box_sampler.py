"""Initial labels: one random box per image (paper Table 6)."""
from typing import List, Tuple

import torch
from torch import Tensor

from mmzsq.registry import TASK_UTILS

NormLabels = Tuple[Tensor, Tensor]  # boxes [n, 4] normalised xyxy, labels [n]


def random_boxes(n: int, g: torch.Generator, wh_range=(0.2, 0.8)) -> Tensor:
    """``n`` boxes, w, h ~ U(wh_range), centre ~ U(w/2, 1 - w/2)."""
    lo, hi = wh_range
    wh = lo + (hi - lo) * torch.rand(n, 2, generator=g)
    c = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=g)
    return torch.cat([c - wh / 2, c + wh / 2], 1)


@TASK_UTILS.register_module()
class RandomBoxSampler:
    """``num_boxes`` box(es) per image; class ~ U{0..C-1},
    w, h ~ U(0.2, 0.8), centre ~ U(w/2, 1 - w/2)."""

    def __init__(self, num_boxes: int = 1, wh_range=(0.2, 0.8)):
        self.num_boxes, self.wh_range = num_boxes, tuple(wh_range)

    def __call__(self, batch_size: int, num_classes: int,
                 g: torch.Generator) -> List[NormLabels]:
        out = []
        for _ in range(batch_size):
            boxes = random_boxes(self.num_boxes, g, self.wh_range)
            labels = torch.randint(0, num_classes, (self.num_boxes, ),
                                   generator=g)
            out.append((boxes, labels))
        return out
