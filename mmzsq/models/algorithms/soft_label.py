"""Stage II's soft-label switch (``model.soft_label``): the images whose
synthetic labels the teacher does not confirm train on L_KD only.

Stage I's labels are drawn at random (ALS adds the teacher's detections),
so some label a box the teacher does not see in the final image.  For each
ground-truth box the teacher's confidence is the maximum of
``sigmoid(obj) * sigmoid(cls_c)`` (YOLOv5; ``sigmoid(cls_c)`` for YOLOv8 /
YOLO11) over the priors whose cell centre lies in the box (or whose cell
holds the box centre), from the teacher head outputs L_KD uses anyway; an
image is *hard* when one of its boxes is below ``conf_thr``.  L_detect is
the head's own ``loss_by_feat`` on the other (easy) images.
"""
import numbers
from typing import Dict, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from mmzsq.models.utils.yolo_predictions import decode_yolo_outputs
from mmzsq.utils.config_switch import ConfigSwitch
from mmzsq.utils.errors import ConfigError

Samples = Union[dict, list]


def gt_rows(data_samples: Samples) -> Tensor:
    """``[n, 6]`` rows ``(image, class, x1, y1, x2, y2)`` of a batch:
    mmyolo's ``yolov5_collate`` dict (``bboxes_labels``) or a list of
    ``DetDataSample``."""
    if isinstance(data_samples, dict):
        return data_samples['bboxes_labels']
    from mmdet.structures.bbox import get_box_tensor
    rows = []
    for i, s in enumerate(data_samples):
        b = get_box_tensor(s.gt_instances.bboxes).float()
        rows.append(torch.cat([b.new_full((len(b), 1), i),
                               s.gt_instances.labels[:, None].float(), b],
                              dim=1))
    return torch.cat(rows) if rows else torch.zeros(0, 6)


def label_confidence(head: nn.Module, teacher_outs: Sequence,
                     rows: Tensor) -> Tensor:
    """The teacher's confidence ``[n]`` for each row of :func:`gt_rows`."""
    if not len(rows):
        return rows.new_zeros(0)
    pred = decode_yolo_outputs(head, teacher_outs, boxes=False)
    rows = rows.to(pred.centres.device).float()
    img, cls = rows[:, 0].long(), rows[:, 1].long()
    x1, y1, x2, y2 = (v[:, None] for v in rows[:, 2:].unbind(1))
    px, py = pred.centres[None, :, 0], pred.centres[None, :, 1]
    half = pred.strides[None] / 2
    inside = (px >= x1) & (px <= x2) & (py >= y1) & (py <= y2)
    holds_centre = ((px - (x1 + x2) / 2).abs() <= half) & \
        ((py - (y1 + y2) / 2).abs() <= half)
    scores = pred.scores[img, :, cls]  # [n, N]
    return scores.masked_fill(~(inside | holds_centre), 0).amax(1)


def select_images(outs: Sequence, data_samples: Samples,
                  keep: Tensor) -> Tuple[tuple, Samples]:
    """Head outputs and samples of the images ``keep`` (indices), their
    boxes renumbered from 0."""
    num = outs[0][0].shape[0]
    outs = tuple([t[keep] for t in level] for level in outs)
    idx = keep.tolist()
    if not isinstance(data_samples, dict):
        return outs, [data_samples[i] for i in idx]
    rows = data_samples['bboxes_labels']
    new_index = torch.full((num, ), -1, dtype=torch.long,
                           device=rows.device)
    new_index[keep.to(rows.device)] = torch.arange(len(idx),
                                                   device=rows.device)
    img = new_index[rows[:, 0].long()]
    rows = torch.cat([img[img >= 0, None].to(rows.dtype),
                      rows[img >= 0, 1:]], dim=1)
    metas = data_samples['img_metas']
    return outs, dict(data_samples, bboxes_labels=rows,
                      img_metas=[metas[i] for i in idx])


def head_loss(head: nn.Module, outs: Sequence,
              data_samples: Samples) -> Dict[str, Tensor]:
    """``head.loss_by_feat`` on given head outputs, with the arguments
    mmyolo's ``YOLOv5Head.loss`` passes (both sample formats)."""
    if isinstance(data_samples, dict):
        return head.loss_by_feat(*outs, data_samples['bboxes_labels'],
                                 data_samples['img_metas'])
    from mmdet.models.utils import unpack_gt_instances
    gt, gt_ignore, metas = unpack_gt_instances(data_samples)
    return head.loss_by_feat(*outs, gt, metas, gt_ignore)


class SoftLabel(ConfigSwitch):
    """``model.soft_label=dict(conf_thr=0.25)``: L_detect on the images
    whose every label the teacher sees with at least ``conf_thr``."""

    KEYS = ('conf_thr', )
    WHERE = 'model.soft_label'
    EXAMPLE = 'dict(conf_thr=0.25)'

    def __init__(self, conf_thr: float = 0.25):
        if not isinstance(conf_thr, numbers.Real) or \
                isinstance(conf_thr, bool) or not 0 <= conf_thr <= 1:
            raise ConfigError(
                f'model.soft_label.conf_thr={conf_thr!r}: give a teacher '
                'confidence in [0, 1], e.g. dict(conf_thr=0.25)')
        self.conf_thr = float(conf_thr)

    def hard_images(self, head: nn.Module, teacher_outs: Sequence,
                    data_samples: Samples, num_images: int) -> Tensor:
        """``[B]`` bool: an image with a label below ``conf_thr``."""
        rows = gt_rows(data_samples)
        dev = teacher_outs[0][0].device
        hard = torch.zeros(num_images, dtype=torch.bool, device=dev)
        if len(rows):
            low = label_confidence(head, teacher_outs, rows) < self.conf_thr
            hard[rows[:, 0].long().to(dev)[low]] = True
        return hard

    def det_loss(self, head: nn.Module, outs: Sequence, data_samples:
                 Samples, teacher_outs: Sequence) -> Dict[str, Tensor]:
        """The head's losses on the easy images, plus ``hard_frac``."""
        num = outs[0][0].shape[0]
        with torch.no_grad():
            hard = self.hard_images(head, teacher_outs, data_samples, num)
        frac = hard.float().mean()
        if not bool(hard.any()):  # as the plain forward
            losses = head_loss(head, outs, data_samples)
        elif bool(hard.all()):  # no easy image: 0, keeping the graph
            losses = {k: _zero(v) for k, v in
                      head_loss(head, outs, data_samples).items()}
        else:
            easy = (~hard).nonzero()[:, 0]
            losses = head_loss(head, *select_images(outs, data_samples,
                                                    easy))
        return dict(losses, hard_frac=frac)


def _zero(v):
    return [x * 0 for x in v] if isinstance(v, (list, tuple)) else v * 0
