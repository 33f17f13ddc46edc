"""Prediction distillation loss for YOLOv5-style heads (mmyolo)."""
import torch.nn as nn
from mmrazor.models import KLDivergence

from mmzsq.registry import MODELS
from .binary_kl import bernoulli_kl


@MODELS.register_module()
class YOLOKDLoss(nn.Module):
    """L_KD for mmyolo YOLOv5 heads (``bbox_head.head_module`` outputs).

    What is compared, for every anchor of every level and location:

    * class distribution: ``softmax(class logits / tau)`` of the teacher vs
      the student over the C classes (KL(teacher || student));
    * objectness: the Bernoulli distribution ``sigmoid(obj / tau)``.

    Both terms are ``tau^2``-scaled KL averaged over anchors, summed over the
    two terms and averaged over levels.  Box regressions are not compared
    (they are not distributions; L_feat and L_detect cover them).

    Inputs are the head module's ``(cls_scores, bbox_preds, objectnesses)``,
    each a list over levels of ``[B, A*K, H, W]`` maps (K = C, 4, 1).
    """

    def __init__(self, tau: float = 4.0, num_base_priors: int = 3,
                 cls_weight: float = 1.0, obj_weight: float = 1.0):
        super().__init__()
        self.tau = tau
        self.num_base_priors = num_base_priors
        self.cls_weight, self.obj_weight = cls_weight, obj_weight
        self.kl = KLDivergence(tau=tau, reduction='batchmean')

    def _per_anchor(self, x):
        b, ak, h, w = x.shape
        a = self.num_base_priors
        return x.reshape(b, a, ak // a, h, w).permute(0, 1, 3, 4, 2) \
            .reshape(-1, ak // a)

    def forward(self, student_outs, teacher_outs):
        s_cls, _, s_obj = student_outs[:3]
        t_cls, _, t_obj = teacher_outs[:3]
        loss = 0
        for sc, tc, so, to in zip(s_cls, t_cls, s_obj, t_obj):
            loss = loss + self.cls_weight * self.kl(
                self._per_anchor(sc).float(), self._per_anchor(tc).float())
            loss = loss + self.obj_weight * bernoulli_kl(so, to, self.tau)
        return loss / len(s_cls)
