"""Adaptive label sampling (paper §3.2, Algorithm 1)."""
from typing import Dict, Optional, Tuple, Union

import torch
from mmdet.structures.bbox import HorizontalBoxes, bbox_overlaps
from mmengine.hooks import Hook
from torch import Tensor

from mmzsq.registry import HOOKS


def box_area(b: Tensor) -> Tensor:
    return HorizontalBoxes(b.clamp(min=0)).areas.clamp(min=0)


def adaptive_label_update(boxes: Tensor, labels: Tensor, pred_boxes: Tensor,
                          pred_scores: Tensor, pred_labels: Tensor,
                          conf_thr: float = 0.2, iou_thr: float = 0.35,
                          min_area: float = 0.01, max_area: float = 0.85,
                          allow_add=None,
                          stats: Optional[Dict[str, int]] = None
                          ) -> Tuple[Tensor, Tensor]:
    """One ALS update of one image's labels; all boxes normalised xyxy.

    1. candidates: predictions with score > ``conf_thr``;
    2. add: a candidate whose max IoU with the labels (including ones just
       added) is < ``iou_thr`` and whose area is in [min_area, max_area]
       becomes a label with the predicted class (``allow_add(cls)`` may veto
       it -- the class-balance prior);
    3. remove: if the image has more than one label and the teacher has
       candidates on it, labels whose max IoU with every candidate is
       < ``iou_thr`` are dropped (an image without candidates keeps its
       labels: the teacher finding nothing is no evidence against them);
    4. at least one label stays (the best-supported one).

    ``stats`` (optional) gets its ``'added'`` / ``'removed'`` counts
    increased by this update's additions and removals.
    """
    keep = pred_scores > conf_thr
    cb, cl = pred_boxes[keep].float(), pred_labels[keep].long()
    boxes, labels = boxes.float().clone(), labels.long().clone()
    area = box_area(cb)
    added = removed = 0
    for j in torch.argsort(pred_scores[keep], descending=True).tolist():
        if not (min_area <= float(area[j]) <= max_area):
            continue
        if len(boxes):
            iou = bbox_overlaps(cb[j:j + 1], boxes).max()
            if float(iou) >= iou_thr:
                continue
        if allow_add is not None and not allow_add(int(cl[j])):
            continue
        boxes = torch.cat([boxes, cb[j:j + 1]])
        labels = torch.cat([labels, cl[j:j + 1]])
        added += 1
    if len(boxes) > 1 and len(cb):
        support = bbox_overlaps(boxes, cb).max(1).values
        stay = support >= iou_thr
        if not bool(stay.any()):
            stay[int(support.argmax())] = True
        removed = int((~stay).sum())
        boxes, labels = boxes[stay], labels[stay]
    if stats is not None:
        stats['added'] = stats.get('added', 0) + added
        stats['removed'] = stats.get('removed', 0) + removed
    return boxes, labels


@HOOKS.register_module()
class AdaptiveLabelSamplingHook(Hook):
    """Every ``interval`` pixel-update steps inside ``[warmup, early_exit]``
    of a label-sampling stage of :class:`SynthesisLoop` (its
    ``after_synthesis_iter`` hook point), the teacher predicts
    on the current images and :func:`adaptive_label_update` edits each
    image's labels.

    ``warmup``/``early_exit`` are step counts within the stage (ints), or
    fractions of the stage's length (floats up to 1.0; ``1.0``: through the
    stage's last step).  The official YOLOv5 command (800 / 2800 of 2500
    steps: from step 800 to the end) is ``0.32`` / ``1.0``; its YOLO11
    settings (800 / 2800 of 3000) are ``0.2667`` / ``0.9333``.

    ``class_balance`` (off by default, an idea beyond the paper, effect not
    yet measured): an addition of class c is accepted with probability
    ``min(1, (mean_count + 1) / (count_c + 1))``, counts being the classes
    this hook has added so far in the run (initial random labels are
    uniform already).
    """
    priority = 'NORMAL'

    def __init__(self, interval: int = 50,
                 warmup: Union[int, float] = 800,
                 early_exit: Union[int, float] = 2800,
                 conf_thr: float = 0.2, iou_thr: float = 0.35,
                 min_area: float = 0.01, max_area: float = 0.85,
                 class_balance: bool = False, seed: int = 0):
        assert interval > 0, 'interval must be positive'
        self.interval, self.warmup, self.early_exit = interval, warmup, \
            early_exit
        self.conf_thr, self.iou_thr = conf_thr, iou_thr
        self.min_area, self.max_area = min_area, max_area
        self.class_balance = class_balance
        self.class_counts: Optional[Tensor] = None
        self._g = torch.Generator().manual_seed(seed)
        self.num_updates = 0
        # this batch's additions / removals, logged after the batch
        self.batch_stats = dict(added=0, removed=0)

    @staticmethod
    def _abs(v, total: int) -> int:
        return int(round(v * total)) if isinstance(v, float) and v <= 1 \
            else int(v)

    def should_update(self, step: int, total: int) -> bool:
        """``step`` is 1-based within the stage."""
        return (self._abs(self.warmup, total) <= step <=
                self._abs(self.early_exit, total)) and \
            step % self.interval == 0

    def _allow_add(self, cls: int) -> bool:
        counts = self.class_counts
        p = min(1.0, float(counts.float().mean() + 1) /
                float(counts[cls] + 1))
        ok = float(torch.rand(1, generator=self._g)) < p
        if ok:
            counts[cls] += 1
        return ok

    def after_synthesis_iter(self, runner, loop) -> None:
        """The custom hook point of :class:`SynthesisLoop` (``loop``: the
        loop whose ``labels`` this edits)."""
        stage = getattr(loop, 'stage', None)
        if stage is None or not stage.get('label_sampling', False):
            return
        if not self.should_update(loop.stage_step, stage['iters']):
            return
        adapter = loop.adapter
        if self.class_balance and self.class_counts is None:
            self.class_counts = torch.zeros(adapter.num_classes,
                                            dtype=torch.long)
        images = loop.current_images()
        h, w = images.shape[-2:]
        scale = images.new_tensor([w, h, w, h])
        preds = adapter.predict(images)
        stats = self.batch_stats
        new = []
        for (boxes, labels), p in zip(loop.labels, preds):
            pb = (p.bboxes / scale).clamp(0, 1).cpu()
            nb, nl = adaptive_label_update(
                boxes, labels, pb, p.scores.cpu(), p.labels.cpu(),
                self.conf_thr, self.iou_thr, self.min_area, self.max_area,
                self._allow_add if self.class_balance else None, stats)
            new.append((nb, nl))
        loop.labels = new
        self.num_updates += 1
        runner.message_hub.update_scalar(
            'synthesis/boxes_per_img', sum(len(b) for b, _ in new) / len(new))

    def after_synthesis_batch(self, runner, loop, batch: int) -> None:
        """Log the batch's ALS totals; the next batch counts afresh."""
        if self.batch_stats['added'] or self.batch_stats['removed']:
            runner.logger.info(
                f'ALS, batch {batch}: {self.batch_stats["added"]} labels '
                f'added, {self.batch_stats["removed"]} removed, '
                f'{sum(len(b) for b, _ in loop.labels)} in all')
        self.batch_stats = dict(added=0, removed=0)
