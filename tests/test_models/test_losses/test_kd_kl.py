"""The KD losses' KL helpers against MMRazor's ``KLDivergence``: same
values, same student gradients, no teacher gradient."""
import pytest
import torch
from mmrazor.models import KLDivergence

from mmzsq.models.losses.kd_kl import bernoulli_kl, softmax_kl


def _grads(fn, s, t):
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    loss = fn(s, t)
    loss.backward()
    return loss.detach(), s.grad, t.grad


@pytest.mark.parametrize('shape', [(7, 5), (6, 80, 4, 3)])
@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_softmax_kl_is_mmrazors_kl_per_row(shape, tau):
    torch.manual_seed(0)
    s, t = torch.randn(*shape) * 4, torch.randn(*shape) * 4
    rows = s.numel() // s.shape[1]

    def ours(s, t):
        kl = softmax_kl(s, t, tau)
        assert kl.shape == s.shape[:1] + s.shape[2:]
        return kl.sum()

    def mmrazor(s, t):  # 'sum': every row's KL, tau^2-scaled
        return KLDivergence(tau=tau, reduction='sum')(s, t)

    got, got_gs, got_gt = _grads(ours, s, t)
    want, want_gs, _ = _grads(mmrazor, s, t)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_gs, want_gs, rtol=1e-4, atol=1e-6)
    assert got_gt is None  # the teacher is not trained
    assert (softmax_kl(s, t, tau) >= -1e-5).all()
    assert softmax_kl(s, s, tau).abs().max() < 1e-4
    assert got / rows > 0


def test_bernoulli_kl_is_the_two_class_softmax_kl():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 4, 5) * 5, torch.randn(2, 3, 4, 5) * 5

    def two_class(z):
        z = z.reshape(-1, 1)
        return torch.cat([torch.zeros_like(z), z], 1)

    for n in (None, 2):
        def mmrazor(s, t):
            kd = KLDivergence(tau=4.0, reduction='sum')
            kl = kd(two_class(s), two_class(t))
            return kl / (s.numel() if n is None else n)

        got, got_gs, got_gt = _grads(
            lambda s, t: bernoulli_kl(s, t, 4.0, num_images=n), s, t)
        want, want_gs, _ = _grads(mmrazor, s, t)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got_gs, want_gs, rtol=1e-4, atol=1e-7)
        assert got_gt is None
    assert bernoulli_kl(s[:0], t[:0]) == 0
