"""Prediction distillation loss for two-stage (RPN + RoI) detectors."""
import torch.nn as nn
from mmzsq.registry import MODELS
from .kd_kl import KDReduction


@MODELS.register_module()
class TwoStageKDLoss(KDReduction, nn.Module):
    """L_KD for mmdet two-stage detectors (Faster/Mask R-CNN).

    What is compared:

    * RPN objectness: for every anchor, the Bernoulli distribution
      ``sigmoid(rpn_cls / tau)`` of teacher vs student (RPN heads use
      sigmoid, one logit per anchor);
    * RoI classification: for every RoI the *student* sampled during its own
      loss, the teacher's RoI head is run on the same boxes (its own
      features) and ``softmax(cls_score / tau)`` over C+1 classes (incl.
      background) is compared.

    Each term is a ``tau^2``-scaled KL(teacher || student), averaged over
    anchors / RoIs; the RPN term is averaged over levels
    (``reduction='anchor_mean'``).  ``reduction='image'`` (Eq. 7) sums over
    anchors, levels, RoIs and classes and divides by the number of images
    (the batch size of the RPN maps).
    """

    def __init__(self, tau: float = 4.0, rpn_weight: float = 1.0,
                 roi_weight: float = 1.0, reduction: str = 'anchor_mean'):
        super().__init__()
        self.tau = tau
        self.rpn_weight, self.roi_weight = rpn_weight, roi_weight
        self._init_reduction(reduction)

    def forward(self, s_rpn_cls, t_rpn_cls, s_roi_cls=None, t_roi_cls=None):
        loss = 0
        if self.rpn_weight:
            rpn = sum(self._bernoulli(s, t)
                      for s, t in zip(s_rpn_cls, t_rpn_cls))
            loss = loss + self.rpn_weight * self._over_levels(
                rpn, len(s_rpn_cls))
        if self.roi_weight and s_roi_cls is not None and \
                s_roi_cls.numel() > 0:
            loss = loss + self.roi_weight * self._kl(
                s_roi_cls, t_roi_cls, s_rpn_cls[0].shape[0])
        return loss
