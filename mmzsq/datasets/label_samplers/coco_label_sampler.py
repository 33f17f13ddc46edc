"""Real-label baseline (paper Table 5): boxes of real images from a COCO
json (normalised by each image's size), no real pixels used."""
from typing import List

import torch

from mmzsq.registry import TASK_UTILS
from .random_box_sampler import NormLabels


@TASK_UTILS.register_module()
class CocoLabelSampler:
    """Labels of the images of ``ann_file`` (drawn at random, with
    replacement once exhausted); categories mapped to 0..C-1 in the json's
    category order; images without boxes (or crowd-only) are skipped."""

    def __init__(self, ann_file: str):
        import json
        with open(ann_file) as f:
            coco = json.load(f)
        cat2idx = {c['id']: i for i, c in enumerate(
            sorted(coco['categories'], key=lambda c: c['id']))}
        imgs = {im['id']: im for im in coco['images']}
        per_img = {}
        for a in coco['annotations']:
            if a.get('iscrowd', 0) or a['bbox'][2] < 1 or a['bbox'][3] < 1:
                continue
            im = imgs[a['image_id']]
            x, y, w, h = a['bbox']
            per_img.setdefault(a['image_id'], []).append(
                ([x / im['width'], y / im['height'], (x + w) / im['width'],
                  (y + h) / im['height']], cat2idx[a['category_id']]))
        if not per_img:
            raise ValueError(f'CocoLabelSampler: {ann_file} has no usable '
                             'boxes; pass a COCO json with annotations')
        self.items = [per_img[k] for k in sorted(per_img)]
        self.num_json_classes = len(cat2idx)

    def __call__(self, batch_size: int, num_classes: int,
                 g: torch.Generator) -> List[NormLabels]:
        if self.num_json_classes != num_classes:
            raise ValueError(
                f'CocoLabelSampler: the json has {self.num_json_classes} '
                f'categories but the teacher {num_classes}; use a json of '
                "the teacher's dataset")
        idx = torch.randint(0, len(self.items), (batch_size, ), generator=g)
        out = []
        for i in idx.tolist():
            boxes = torch.tensor([b for b, _ in self.items[i]]).clamp(0, 1)
            labels = torch.tensor([c for _, c in self.items[i]])
            out.append((boxes.float(), labels.long()))
        return out
