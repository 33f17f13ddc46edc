"""IoU-aware box distillation for YOLO heads (mmyolo)."""
import numbers
from typing import Sequence

import torch
import torch.nn as nn
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

from mmzsq.models.utils import decode_yolo_outputs, max_confidence
from mmzsq.registry import MODELS
from mmzsq.utils.errors import ConfigError


@MODELS.register_module()
class DecodedBoxIoULoss(nn.Module):
    """``1 - IoU`` between the student's and the teacher's decoded boxes,
    averaged over the priors the teacher is confident about.

    Both heads' raw outputs are decoded as ``predict_by_feat`` does
    (:func:`~mmzsq.models.utils.decode_yolo_outputs`); a prior counts when
    the teacher's confidence, ``max_c sigmoid(obj) * sigmoid(cls_c)``
    (YOLOv5) or ``max_c sigmoid(cls_c)`` (YOLOv8 / YOLO11), exceeds
    ``conf_thr``.  IoU is mmdet's ``bbox_overlaps(is_aligned=True)``.  No
    confident prior: 0 (with the student's graph).  The teacher's boxes
    get no gradient.  The algorithm weighs it
    with ``loss_weights.iou``.
    """

    def __init__(self, conf_thr: float = 0.25):
        super().__init__()
        if not isinstance(conf_thr, numbers.Real) or \
                isinstance(conf_thr, bool) or not 0 <= conf_thr < 1:
            raise ConfigError(
                f'DecodedBoxIoULoss conf_thr={conf_thr!r}: give a teacher '
                'confidence in [0, 1), e.g. conf_thr=0.25')
        self.conf_thr = float(conf_thr)

    def forward(self, student_outs: Sequence, teacher_outs: Sequence,
                head: nn.Module) -> Tensor:
        # a weighted mean over all priors, not a gather of the kept ones:
        # the same value, with fixed shapes and no host sync (so it
        # compiles into one graph, see QuantDistillAlgorithm.compile)
        with torch.no_grad():
            keep = (max_confidence(head, teacher_outs) >
                    self.conf_thr).float()  # [B, N]
            t_boxes = decode_yolo_outputs(head, teacher_outs,
                                          scores=False).boxes
        s_boxes = decode_yolo_outputs(head, student_outs, scores=False).boxes
        iou = bbox_overlaps(s_boxes, t_boxes, is_aligned=True)
        return ((1 - iou) * keep).sum() / keep.sum().clamp(min=1)
