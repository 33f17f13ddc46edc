"""LSQ / LSQ+ fake-quant numerics on known tensors."""
import math

import pytest
import torch

from mmzsq.models.fake_quants import LSQFakeQuantize


@pytest.mark.parametrize('bits', [2, 4, 8])
def test_codes_in_signed_range_and_init(bits):
    torch.manual_seed(0)
    x = torch.randn(4, 8, 5, 5) * 3
    q = LSQFakeQuantize(bits=bits)
    assert (q.quant_min, q.quant_max) == (-2**(bits - 1), 2**(bits - 1) - 1)
    y = q(x)
    qp = 2**(bits - 1) - 1
    # init = 2 mean|x| / sqrt(Qp), taken once, from the first tensor
    s = q.scale.detach().abs() + q.eps
    assert torch.allclose(s, 2 * x.abs().mean() / math.sqrt(qp), rtol=1e-5)
    codes = y.detach() / s
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert codes.min() >= q.quant_min - 1e-3
    assert codes.max() <= q.quant_max + 1e-3
    assert codes.min() < 0  # signed, symmetric
    # init-then-learn: a second, different tensor does not re-estimate
    q(x * 10)
    assert torch.allclose(q.scale.detach().abs() + q.eps, s)


def test_step_size_gradient_matches_lsq_formula():
    torch.manual_seed(0)
    bits, x = 4, torch.randn(3, 7, 6) * 2
    q = LSQFakeQuantize(bits=bits)
    q(x)
    q.scale.data.fill_(0.37)
    r = torch.randn_like(x)
    xv = x.clone().requires_grad_(True)
    (q(xv) * r).sum().backward()
    s = 0.37 + q.eps.item()
    qn, qp = q.quant_min, q.quant_max
    v = x / s
    dyds = torch.where(v <= qn, torch.full_like(v, qn),
                       torch.where(v >= qp, torch.full_like(v, qp),
                                   v.round() - v))
    g = 1 / math.sqrt(x.numel() * qp)
    expected = g * (r * dyds).sum()
    assert torch.allclose(q.scale.grad, expected.reshape(1), rtol=1e-4,
                          atol=1e-6)
    # straight-through estimator for x: pass inside the range, 0 outside
    inside = (v > qn) & (v < qp)
    assert torch.allclose(xv.grad, r * inside)
    # inference (fused kernel) == training path
    with torch.no_grad():
        assert torch.allclose(q(x), q(x.clone().requires_grad_()).detach())


def test_lsq_plus_offset_applied_before_rounding():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8) * 5 + 1.0  # strictly positive activations
    q = LSQFakeQuantize(bits=4, learn_offset=True)
    q(x)
    assert q.zero_point.requires_grad and q.zero_point.abs().item() > 0
    s, beta = q.scale.item() + q.eps.item(), q.zero_point.item()
    y = q(x)
    codes = (y.detach() - beta) / s
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert codes.min() >= -8 - 1e-3 and codes.max() <= 7 + 1e-3
    # the whole range is used: an offset-less x/s would clip at 7*s
    assert (y.detach() - x).abs().max() <= s / 2 + 1e-4
    # offset gradient (LSQ+): d x_hat / d beta = 1 where clipped, 0 inside
    q.scale.data.mul_(0.5)
    r = torch.randn_like(x)
    (q(x) * r).sum().backward()
    s = q.scale.item() + q.eps.item()
    v = (x - beta) / s
    clipped = (v <= -8) | (v >= 7)
    assert clipped.any()
    g = 1 / math.sqrt(x.numel() * 7)
    assert torch.allclose(q.zero_point.grad, g * (r * clipped).sum(),
                          rtol=1e-4)


def test_per_channel_weights():
    w = torch.cat([torch.randn(1, 4, 3, 3) * 0.01,
                   torch.randn(1, 4, 3, 3) * 1.0])
    q = LSQFakeQuantize(bits=4, per_channel=True, num_channels=2)
    q(w)
    assert q.scale.shape == (2,)
    assert q.scale[1] > 20 * q.scale[0]


@pytest.mark.parametrize('bits', [1, 9, 3.5, 0])
def test_bits_out_of_range_is_a_clear_error(bits):
    with pytest.raises(ValueError, match='2..8'):
        LSQFakeQuantize(bits=bits)


def test_state_dict_carries_bits_and_rejects_mismatch():
    q8 = LSQFakeQuantize(bits=8)
    q8(torch.randn(10))
    sd = q8.state_dict()
    assert sd['qrange'].tolist() == [8, -128, 127]
    assert sd['initialized'].item() == 1
    q8b = LSQFakeQuantize(bits=8)
    q8b.load_state_dict(sd)
    assert torch.equal(q8b.scale, q8.scale) and q8b.initialized.item() == 1
    with pytest.raises(ValueError, match='8 bits'):
        LSQFakeQuantize(bits=4).load_state_dict(sd)


def _pass(q, x):
    """One training forward + backward; the step size's gradient."""
    q.scale.grad = None
    (q(x.clone().requires_grad_(True)) * 1.5).sum().backward()
    return q.scale.grad.clone()


def test_init_batches_1_is_the_first_batch_lsq_init():
    torch.manual_seed(0)
    xs = [torch.randn(2, 4, 6, 6) * (i + 1) for i in range(3)]
    q_def = LSQFakeQuantize(bits=4)
    q_1 = LSQFakeQuantize(bits=4, init_batches=1)
    for x in xs:
        g_def, g_1 = _pass(q_def, x), _pass(q_1, x)
        assert torch.equal(q_def.scale, q_1.scale)
        assert torch.equal(g_def, g_1) and g_1.abs().item() > 0
    assert torch.allclose(q_1.scale.detach(),
                          2 * xs[0].abs().mean() / math.sqrt(7), rtol=1e-6)


@pytest.mark.parametrize('lsq_plus', [False, True])
def test_init_batches_3_is_the_mean_of_three_estimates(lsq_plus):
    torch.manual_seed(0)
    xs = [torch.rand(2, 4, 6, 6) * (i + 1) + i for i in range(4)]
    q = LSQFakeQuantize(bits=4, learn_offset=lsq_plus, init_batches=3)
    ests = [LSQFakeQuantize(bits=4, learn_offset=lsq_plus).estimate(x)
            for x in xs[:3]]
    for i, x in enumerate(xs[:3]):
        grad = _pass(q, x)
        mean = [sum(e[j] for e in ests[:i + 1]) / (i + 1)
                for j in range(len(ests[0]))]
        assert torch.allclose(q.scale.detach(), mean[0], rtol=1e-6)
        if lsq_plus:
            assert torch.allclose(q.zero_point.detach(), mean[1], rtol=1e-6)
        assert q.initialized.item() == (i == 2)
        # frozen (no gradient) until the k-th pass, learned from it on
        assert (grad.abs().item() > 0) == (i == 2), (i, grad)
    s = q.scale.detach().clone()
    assert _pass(q, xs[3]).abs().item() > 0
    assert torch.equal(q.scale.detach(), s)  # no re-estimate afterwards
    # the saved state has today's keys and flags
    assert set(q.state_dict()) == set(
        LSQFakeQuantize(bits=4, learn_offset=lsq_plus).state_dict())
    assert q.state_dict()['initialized'].item() == 1


@pytest.mark.parametrize('k', [0, 2.0, True])
def test_bad_init_batches_is_a_clear_error(k):
    with pytest.raises(ValueError, match='init_batches must be a positive'):
        LSQFakeQuantize(init_batches=k)


@pytest.mark.parametrize('per_channel', [False, True])
def test_mse_init_has_less_error_than_lsq_init(per_channel):
    """init='mse': the step size of least squared quantization error on the
    grid of clipping ratios -- never worse than LSQ's estimate on the same
    tensor, and clearly better on a Gaussian one at 4 bits."""
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3) * 0.05
    err = {}
    for init in ('lsq', 'mse'):
        fq = LSQFakeQuantize(bits=4, per_channel=per_channel,
                             num_channels=16, init=init)
        with torch.no_grad():
            err[init] = float((fq(w) - w).pow(2).mean())
        assert bool(fq.initialized[0])
    assert err['mse'] < 0.6 * err['lsq']
    # brute force over the same grid, per tensor
    if not per_channel:
        amax = float(w.abs().max())
        best = min(float(((w / s).round().clamp(-8, 7) * s - w).pow(2).mean())
                   for s in [amax * r / 7 for r in
                             torch.linspace(0.01, 1.0, 100).tolist()])
        assert abs(err['mse'] - best) <= 1e-4 * best


def test_bad_init_is_a_clear_error():
    from mmzsq.models.quantizers import EagerLSQQuantizer
    from mmzsq.utils.errors import ConfigError
    with pytest.raises(ConfigError, match="'lsq' or 'mse'"):
        LSQFakeQuantize(bits=4, init='minmax')
    with pytest.raises(ConfigError, match="'lsq' or 'mse'"):
        EagerLSQQuantizer(w_init='minmax')
