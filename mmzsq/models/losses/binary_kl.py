"""KL between per-element Bernoulli distributions given by logits."""
import torch
from mmrazor.models import KLDivergence


def bernoulli_kl(student_logits, teacher_logits, tau=4.0):
    """``tau^2 * mean KL(Bern(sigmoid(t/tau)) || Bern(sigmoid(s/tau)))``.

    Implemented with MMRazor's :class:`KLDivergence` on the two-class logits
    ``[0, z]``: ``softmax([0, z]/tau) = [1 - sigmoid(z/tau), sigmoid(z/tau)]``.
    Averaged over elements (each element = one anchor / location).
    """
    s = student_logits.reshape(-1, 1).float()
    t = teacher_logits.reshape(-1, 1).float()
    if s.numel() == 0:
        return s.sum() * 0
    s2 = torch.cat([torch.zeros_like(s), s], dim=1)
    t2 = torch.cat([torch.zeros_like(t), t], dim=1)
    return KLDivergence(tau=tau, reduction='batchmean')(s2, t2)
