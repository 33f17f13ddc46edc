"""MultiSample baseline (paper Table 5): several random boxes per image."""
from typing import List, Optional, Sequence

import torch

from mmzsq.registry import TASK_UTILS
from .random_box_sampler import NormLabels, random_boxes

# Boxes-per-image frequencies for 1..15 boxes (15 = 15 or more), measured
# on coco128 (the 126 of its 128 COCO train2017 images that have boxes); the
# default of the *in-distribution* variant.  Pass ``count_hist=<COCO json>``
# to measure it on another label set.
COCO_BOXES_PER_IMAGE = (0.095, 0.206, 0.111, 0.111, 0.056, 0.032, 0.048,
                        0.071, 0.008, 0.016, 0.040, 0.008, 0.040, 0.024,
                        0.135)


def boxes_per_image_hist(ann_file: str, max_count: int = 15):
    import json
    with open(ann_file) as f:
        coco = json.load(f)
    counts = {}
    for a in coco['annotations']:
        if not a.get('iscrowd', 0):
            counts[a['image_id']] = counts.get(a['image_id'], 0) + 1
    hist = [0.] * max_count
    for n in counts.values():
        hist[min(n, max_count) - 1] += 1
    if not counts:
        raise ValueError(f'{ann_file} has no boxes to take a histogram of')
    return [h / len(counts) for h in hist]


@TASK_UTILS.register_module()
class MultiBoxSampler:
    """Boxes per image drawn from ``count_hist`` (probabilities of 1, 2, ...
    boxes, or a COCO json to measure them on: *in-distribution*, default
    coco128's histogram) or, with
    ``count_hist=None``, uniformly from ``count_range`` (*out-of-
    distribution*).  Boxes are random (w, h ~ U(wh_range)), classes
    uniform."""

    def __init__(self, count_hist: Optional[Sequence[float]] = (
            COCO_BOXES_PER_IMAGE), count_range=(1, 8), wh_range=(0.1, 0.6)):
        if isinstance(count_hist, str):
            count_hist = boxes_per_image_hist(count_hist)
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
