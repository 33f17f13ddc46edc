"""LSQ / LSQ+ fake-quant numerics on known tensors."""
import copy
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
    msg = "'lsq', 'mse' or 'percentile'"
    with pytest.raises(ConfigError, match=msg):
        LSQFakeQuantize(bits=4, init='minmax')
    with pytest.raises(ConfigError, match=msg):
        EagerLSQQuantizer(w_init='minmax')
    with pytest.raises(ConfigError, match='quantizer a_init must be'):
        EagerLSQQuantizer(a_init='minmax')
    for p in (0.2, 1.5, True, '0.99'):
        with pytest.raises(ConfigError, match='a fraction in'):
            EagerLSQQuantizer(a_init='percentile', a_percentile=p)


@pytest.mark.parametrize('per_channel', [False, True])
def test_percentile_init_follows_the_tail(per_channel):
    """init='percentile': the step is the p-quantile of |x| over Qp (per
    tensor or per channel), so a heavier tail widens the range, while
    LSQ's mean-based estimate barely moves."""
    torch.manual_seed(0)
    x = torch.randn(4, 16, 8, 8)
    heavy = x.clone()
    heavy[:, :, 0, 0] *= 40  # 1.6 % of the values, far out
    steps = {}
    for name, t in (('light', x), ('heavy', heavy)):
        for init in ('lsq', 'percentile'):
            fq = LSQFakeQuantize(bits=8, init=init, percentile=0.99,
                                 per_channel=per_channel, num_channels=4)
            with torch.no_grad():
                fq(t)
            steps[name, init] = fq.scale.detach().clone()
            if init == 'percentile':
                rows = t.reshape(4 if per_channel else 1, -1)
                q = torch.quantile(rows.abs(), 0.99, dim=1,
                                   interpolation='higher')
                torch.testing.assert_close(steps[name, init], q / 127)
    grow = lambda i: steps['heavy', i] / steps['light', i]  # noqa: E731
    assert bool((grow('percentile') > 3).all())
    assert bool((grow('lsq') < 2).all())


def test_quantizer_passes_its_activation_init():
    from mmzsq.models.quantizers import EagerLSQQuantizer
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 2, 1))
    EagerLSQQuantizer(a_init='percentile', a_percentile=0.999,
                      skip_patterns=[]).prepare(net)
    fq = net[2].input_fake_quant
    assert (fq.init, fq.percentile) == ('percentile', 0.999)
    assert net[2].weight_fake_quant.init == 'lsq'  # weights unchanged


# -- the one-node training forward (_LSQ) against the plain-torch chain ----
def _grad_scale(x, g):
    return (x - x * g).detach() + x * g


def _round_ste(x):
    return (x.round() - x).detach() + x


def _reference(q, x):
    """The former training forward: autograd through straight-through
    rounding in plain torch (LSQ's gradients by construction)."""
    qn, qp = q.quant_min, q.quant_max
    n = x.numel() / q.scale.numel()
    g = 0.0 if not q.initialized[0] else 1.0 / math.sqrt(n * qp)
    s = q._view(_grad_scale(q.scale.abs() + q.eps, g), x)
    if q.learn_offset:
        beta = q._view(_grad_scale(q.zero_point, g), x)
        return _round_ste(((x - beta) / s).clamp(qn, qp)) * s + beta
    return _round_ste((x / s).clamp(qn, qp)) * s


def _grads(q, x, r, fn):
    q.zero_grad()
    xv = x.clone().requires_grad_(True)
    y = fn(q, xv)
    (y * r).sum().backward()
    zp = q.zero_point.grad.clone() if q.learn_offset else None
    return y.detach(), xv.grad, q.scale.grad.clone(), zp


@pytest.mark.parametrize('kw', [
    dict(bits=8), dict(bits=4), dict(bits=2, signed=False),
    dict(bits=4, learn_offset=True),
    dict(bits=4, per_channel=True, num_channels=16)])
def test_one_node_forward_matches_plain_torch(kw):
    torch.manual_seed(0)
    shape = (16, 8, 3, 3) if kw.get('per_channel') else (4, 16, 20, 20)
    q = LSQFakeQuantize(**kw)
    q(torch.randn(shape) * 2)
    q.scale.data.fill_(2.5 / q.quant_max)  # x ~ N(0, 2): some clipping
    if q.learn_offset:
        q.zero_point.data.add_(0.3)
    for _ in range(3):
        x, r = torch.randn(shape) * 2, torch.randn(shape)
        y, gx, gs, gz = _grads(q, x, r, lambda q, x: q(x))
        y0, gx0, gs0, gz0 = _grads(q, x, r, _reference)
        assert torch.equal(y, y0)  # the same float operations
        # x: the straight-through gradient (autograd's (dy*s)/s is within
        # an ulp of it)
        assert torch.allclose(gx, gx0, rtol=1e-6, atol=1e-6)
        assert torch.equal(gx == 0, gx0 == 0)
        assert gx.abs().sum() > 0 and (gx == 0).any()  # clipped and not
        # step size / offset: sums of 1e4 terms, in another order
        assert torch.allclose(gs, gs0, rtol=1e-4, atol=1e-7)
        assert gs.abs().min() > 0
        if q.learn_offset:
            assert torch.allclose(gz, gz0, rtol=1e-4, atol=1e-7)
            assert gz.abs().min() > 0
        # and nearer the exact (float64) gradient than the tolerance
        q64 = copy.deepcopy(q).double()
        _, _, gs64, _ = _grads(q64, x.double(), r.double(), _reference)
        assert torch.allclose(gs.double(), gs64, rtol=2e-5)


def test_one_node_gradient_at_the_range_ends():
    """Codes exactly at Qn / Qp pass the gradient (clamp's closed range),
    the next float beyond does not."""
    q = LSQFakeQuantize(bits=4)
    q(torch.ones(4))
    q.scale.data.fill_(0.5)
    s = 0.5 + q.eps.item()
    codes = torch.tensor([-8.0, 7.0, -8.0, 7.0, 3.2, 0.0])
    codes[2] = torch.nextafter(codes[2], torch.tensor(-9.0))
    codes[3] = torch.nextafter(codes[3], torch.tensor(8.0))
    x = codes * s
    v = x / s
    assert v[0] == -8 and v[1] == 7 and v[2] < -8 and v[3] > 7
    r = torch.arange(1.0, 7.0)
    _, gx, gs, _ = _grads(q, x, r, lambda q, x: q(x))
    _, gx0, gs0, _ = _grads(q, x, r, _reference)
    assert gx.tolist() == [1.0, 2.0, 0.0, 0.0, 5.0, 6.0]
    assert torch.allclose(gx, gx0) and torch.allclose(gs, gs0)


def test_one_node_mixed_precision_and_layouts():
    torch.manual_seed(0)
    q = LSQFakeQuantize(bits=8)
    x = torch.randn(2, 8, 6, 6)
    q(x)
    r = torch.randn_like(x)
    # channels-last input (the dot product's fallback)
    xc = x.contiguous(memory_format=torch.channels_last)
    y, gx, gs, _ = _grads(q, xc, r, lambda q, x: q(x))
    y0, gx0, gs0, _ = _grads(q, xc, r, _reference)
    assert torch.equal(y, y0) and torch.allclose(gs, gs0, rtol=1e-5)
    assert torch.allclose(gx, gx0)
    # bf16 activations (autocast): float32 codes, as the plain chain
    xb = x.bfloat16()
    y, gx, gs, _ = _grads(q, xb, r, lambda q, x: q(x))
    y0, gx0, gs0, _ = _grads(q, xb, r, _reference)
    assert y.dtype == y0.dtype and torch.equal(y, y0)
    assert gx.dtype == torch.bfloat16 and torch.equal(gx, gx0)
    assert torch.allclose(gs, gs0, rtol=1e-5)


def test_flags_are_read_again_after_every_change():
    """The flag buffers are cached by version: toggles, in-place writes,
    ``load_state_dict`` and ``.to()`` all take effect at the next call."""
    q = LSQFakeQuantize(bits=4)
    x = torch.randn(3, 5)
    y = q(x)
    assert not torch.equal(y, x)
    q.toggle_fake_quant(False)
    assert torch.equal(q(x), x)
    q.fake_quant_enabled.fill_(1)
    assert not torch.equal(q(x), x)
    q.fake_quant_enabled[0] = 0
    assert torch.equal(q(x), x)
    q.enable_param_learning()
    s = q.scale.detach().clone()
    q(x * 100)  # initialised: no re-estimate
    assert torch.equal(q.scale.detach(), s)
    q.toggle_observer_update(True)  # static estimate on: re-estimated
    q(x * 100)
    assert q.scale.detach() > 10 * s
    q.toggle_observer_update(False)
    fresh = LSQFakeQuantize(bits=4).state_dict()
    q.load_state_dict(fresh)  # initialized = 0 again
    q(x)
    assert torch.allclose(q.scale.detach(), s, rtol=1e-5)
    q.to(torch.float64)
    q.fake_quant_enabled.fill_(0)
    assert torch.equal(q(x), x)


def test_initialized_written_through_data_is_seen():
    """An EMA copies the live state with ``.data.copy_`` (no version
    change); an uninitialised quantizer still sees ``initialized``."""
    live, avg = LSQFakeQuantize(bits=4), LSQFakeQuantize(bits=4)
    x = torch.randn(4, 6)
    live(x)
    avg.load_state_dict(live.state_dict())
    avg.initialized.data.zero_()
    avg.scale.data.fill_(0.25)
    avg(x)  # re-initialised from x
    assert torch.allclose(avg.scale.detach(), live.scale.detach())
    avg.scale.data.fill_(0.25)
    avg.initialized.data.fill_(1)
    avg(x * 10)  # seen: no re-estimate
    assert avg.scale.item() == 0.25
