"""Prediction distillation loss for YOLOv5-style heads (mmyolo)."""
import torch.nn as nn

from mmzsq.registry import MODELS
from .kd_kl import KDReduction


@MODELS.register_module()
class YOLOKDLoss(KDReduction, nn.Module):
    """L_KD for mmyolo YOLOv5 heads (``bbox_head.head_module`` outputs).

    What is compared, for every anchor of every level and location:

    * class distribution: ``softmax(class logits / tau)`` of the teacher vs
      the student over the C classes (KL(teacher || student));
    * objectness: the Bernoulli distribution ``sigmoid(obj / tau)``.

    Both terms are ``tau^2``-scaled KL averaged over anchors, summed over the
    two terms and averaged over levels (``reduction='anchor_mean'``), or,
    with ``reduction='image'`` (Eq. 7 of the paper), summed over anchors,
    classes and levels and divided by the number of images.  Box
    regressions are not compared (they are not distributions; L_feat and
    L_detect cover them).

    Inputs are the head module's ``(cls_scores, bbox_preds, objectnesses)``,
    each a list over levels of ``[B, A*K, H, W]`` maps (K = C, 4, 1).
    """

    def __init__(self, tau: float = 4.0, num_base_priors: int = 3,
                 cls_weight: float = 1.0, obj_weight: float = 1.0,
                 reduction: str = 'anchor_mean'):
        super().__init__()
        self.tau = tau
        self.num_base_priors = num_base_priors
        self.cls_weight, self.obj_weight = cls_weight, obj_weight
        self._init_reduction(reduction)

    def _per_anchor(self, x):
        """``[B, A*C, H, W]`` -> ``[B*A, C, H, W]`` (a view: the classes
        of an anchor in dim 1)."""
        b, ak, h, w = x.shape
        a = self.num_base_priors
        return x.reshape(b * a, ak // a, h, w)

    def forward(self, student_outs, teacher_outs):
        s_cls, _, s_obj = student_outs[:3]
        t_cls, _, t_obj = teacher_outs[:3]
        loss = 0
        for sc, tc, so, to in zip(s_cls, t_cls, s_obj, t_obj):
            loss = loss + self.cls_weight * self._kl(
                self._per_anchor(sc), self._per_anchor(tc), sc.shape[0])
            loss = loss + self.obj_weight * self._bernoulli(so, to)
        return self._over_levels(loss, len(s_cls))


@MODELS.register_module()
class YOLOv8KDLoss(KDReduction, nn.Module):
    """L_KD for anchor-free DFL heads without objectness: mmyolo's YOLOv8
    head module and mmzsq's YOLO11 head module.

    What is compared, for every location of every level:

    * class distribution: ``softmax(class logits / tau)`` of the teacher vs
      the student over the C classes (KL(teacher || student)), as
      :class:`YOLOKDLoss` does per YOLOv5 anchor;
    * box distributions (when both outputs carry them, i.e. the head module
      ran with ``training=True``): for each of the 4 box sides the DFL
      distribution ``softmax(bin logits / tau)`` over the ``reg_max`` bins.

    Each term is a ``tau^2``-scaled KL averaged over locations (and box
    sides); per level ``cls_weight * cls + dfl_weight * dfl``, averaged over
    levels (``reduction='anchor_mean'``); ``reduction='image'`` (Eq. 7)
    sums over locations, box sides, classes / bins and levels and divides by
    the number of images.  There is no objectness term (these heads have
    none), and the decoded box distances (``bbox_preds``) are not compared
    (they are the expectations of the compared DFL distributions; L_feat
    and L_detect cover them otherwise).

    Inputs are the head module's ``(cls_scores, bbox_preds[,
    bbox_dist_preds])``: lists over levels of ``[B, C, H, W]``,
    ``[B, 4, H, W]`` and ``[B, H*W, 4, reg_max]`` tensors.
    """

    def __init__(self, tau: float = 4.0, cls_weight: float = 1.0,
                 dfl_weight: float = 1.0, reduction: str = 'anchor_mean'):
        super().__init__()
        self.tau = tau
        self.cls_weight, self.dfl_weight = cls_weight, dfl_weight
        self._init_reduction(reduction)

    def forward(self, student_outs, teacher_outs):
        s_cls, t_cls = student_outs[0], teacher_outs[0]
        use_dfl = (self.dfl_weight and len(student_outs) > 2
                   and len(teacher_outs) > 2)
        loss = 0
        for i, (sc, tc) in enumerate(zip(s_cls, t_cls)):
            n = sc.shape[0]
            loss = loss + self.cls_weight * self._kl(sc, tc, n)  # C in dim 1
            if use_dfl:
                sd, td = student_outs[2][i], teacher_outs[2][i]
                if sd.dim() == 4 and sd.shape[-1] > 1:  # reg_max > 1
                    loss = loss + self.dfl_weight * self._kl(
                        sd.reshape(-1, sd.shape[-1]),
                        td.reshape(-1, td.shape[-1]), n)
        return self._over_levels(loss, len(s_cls))
