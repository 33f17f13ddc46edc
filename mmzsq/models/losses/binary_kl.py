"""KL helpers of the KD losses: per-element Bernoulli KL and the
``reduction`` (normalisation) they share."""
import torch
from mmrazor.models import KLDivergence

from mmzsq.utils.errors import ConfigError

#: how the KD losses normalise their summed KL: ``'anchor_mean'`` averages
#: over anchors / locations / RoIs (per level, then over levels);
#: ``'image'`` is Eq. 7 of the paper, ``tau^2 * sum KL / N`` with N the
#: number of images (summed over anchors, classes and levels).
KD_REDUCTIONS = ('anchor_mean', 'image')


def check_kd_reduction(reduction):
    if reduction not in KD_REDUCTIONS:
        raise ConfigError(
            f'kd_loss reduction={reduction!r} unknown; use one of '
            f'{KD_REDUCTIONS} (model.kd_loss.reduction)')
    return reduction


def _two_class(logits):
    z = logits.reshape(-1, 1).float()
    return torch.cat([torch.zeros_like(z), z], dim=1)


def bernoulli_kl(student_logits, teacher_logits, tau=4.0, num_images=None):
    """``tau^2 * mean KL(Bern(sigmoid(t/tau)) || Bern(sigmoid(s/tau)))``.

    Implemented with MMRazor's :class:`KLDivergence` on the two-class logits
    ``[0, z]``: ``softmax([0, z]/tau) = [1 - sigmoid(z/tau), sigmoid(z/tau)]``.
    Averaged over elements (each element = one anchor / location), or, with
    ``num_images``, summed over them and divided by ``num_images``.
    """
    s = student_logits.reshape(-1, 1).float()
    if s.numel() == 0:
        return s.sum() * 0
    s2, t2 = _two_class(student_logits), _two_class(teacher_logits)
    if num_images is not None:
        return KLDivergence(tau=tau, reduction='sum')(s2, t2) / num_images
    return KLDivergence(tau=tau, reduction='batchmean')(s2, t2)


class KDReduction:
    """``reduction`` handling shared by the KD losses: ``'anchor_mean'``
    (``tau^2``-scaled KL averaged over rows, i.e. anchors / locations, per
    level, levels averaged) or ``'image'`` (Eq. 7: ``tau^2 * sum KL / N``,
    N images, summed over rows and levels)."""

    def _init_reduction(self, tau, reduction):
        self.reduction = check_kd_reduction(reduction)
        self.kl = KLDivergence(tau=tau, reduction='batchmean')
        self.kl_sum = KLDivergence(tau=tau, reduction='sum')

    def _kl(self, s, t, num_images):
        """KL of ``[rows, K]`` logits, reduced as configured."""
        if self.reduction == 'image':
            return self.kl_sum(s, t) / num_images
        return self.kl(s, t)

    def _bernoulli(self, s, t):
        n = s.shape[0] if self.reduction == 'image' else None
        return bernoulli_kl(s, t, self.tau, num_images=n)

    def _over_levels(self, total, num_levels):
        return total if self.reduction == 'image' else total / num_levels
