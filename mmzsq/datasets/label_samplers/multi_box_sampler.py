"""MultiSample baseline (paper Table 5): several random boxes per image."""
from typing import List, Optional, Sequence

import torch

from mmzsq.registry import TASK_UTILS
from .random_box_sampler import NormLabels, random_boxes

# COCO train2017 boxes-per-image frequencies for 1..15 boxes (the long tail
# above 15 folded into 15); used by the *in-distribution* variant.
COCO_BOXES_PER_IMAGE = (0.158, 0.136, 0.105, 0.085, 0.069, 0.058, 0.050,
                        0.044, 0.038, 0.032, 0.028, 0.024, 0.020, 0.017,
                        0.136)


@TASK_UTILS.register_module()
class MultiBoxSampler:
    """Boxes per image drawn from ``count_hist`` (probabilities of 1, 2, ...
    boxes: *in-distribution*, default COCO's histogram) or, with
    ``count_hist=None``, uniformly from ``count_range`` (*out-of-
    distribution*).  Boxes are random (w, h ~ U(wh_range)), classes
    uniform."""

    def __init__(self, count_hist: Optional[Sequence[float]] = (
            COCO_BOXES_PER_IMAGE), count_range=(1, 8), wh_range=(0.1, 0.6)):
        self.count_hist = None if count_hist is None else \
            torch.tensor(count_hist, dtype=torch.float)
        self.count_range = tuple(count_range)
        self.wh_range = tuple(wh_range)

    def _count(self, g: torch.Generator) -> int:
        if self.count_hist is not None:
            return int(torch.multinomial(self.count_hist, 1,
                                         generator=g)) + 1
        lo, hi = self.count_range
        return int(torch.randint(lo, hi + 1, (1, ), generator=g))

    def __call__(self, batch_size: int, num_classes: int,
                 g: torch.Generator) -> List[NormLabels]:
        out = []
        for _ in range(batch_size):
            n = self._count(g)
            out.append((random_boxes(n, g, self.wh_range),
                        torch.randint(0, num_classes, (n, ), generator=g)))
        return out
