"""The compiled LSQ kernel against the eager one and the plain-torch chain."""
import pytest
import torch

from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.models.fake_quants import compiled_lsq
from mmzsq.models.quantizers import EagerLSQQuantizer
from mmzsq.utils.errors import ConfigError

from .test_lsq_fake_quantize import _grads, _reference

SHAPE = (2, 16, 48, 48)  # 73 728 elements: above compiled_lsq.MIN_NUMEL


@pytest.fixture(scope='module', autouse=True)
def compiled_available():
    if not compiled_lsq.available(torch.device('cpu')):
        pytest.skip('torch.compile does not run here (no C++ compiler?)')


def _pair(**kw):
    torch.manual_seed(0)
    qc = LSQFakeQuantize(**kw)
    qc(torch.randn(SHAPE) * 2)
    qc.scale.data.fill_(2.5 / qc.quant_max)  # x ~ N(0, 2): some clipping
    qe = LSQFakeQuantize(kernel='eager', **kw)
    qe.load_state_dict(qc.state_dict())
    return qc, qe


def _node(q, x):
    return type(q(x.clone().requires_grad_(True)).grad_fn).__name__


@pytest.mark.parametrize('kw', [
    dict(bits=8), dict(bits=4), dict(bits=2, signed=False)])
def test_compiled_matches_eager_and_plain_torch(kw):
    qc, qe = _pair(**kw)
    assert _node(qc, torch.randn(SHAPE)) == 'CompiledLSQBackward'
    assert _node(qe, torch.randn(SHAPE)) == '_LSQBackward'
    for _ in range(2):
        x, r = torch.randn(SHAPE) * 2, torch.randn(SHAPE)
        y, gx, gs, _ = _grads(qc, x, r, lambda q, x: q(x))
        y1, gx1, gs1, _ = _grads(qe, x, r, lambda q, x: q(x))
        y0, gx0, gs0, _ = _grads(qc, x, r, _reference)
        assert torch.equal(y, y1) and torch.equal(y, y0)
        assert torch.equal(gx, gx1)  # dL/dy where not clipped, else 0
        assert gx.abs().sum() > 0 and (gx == 0).any()
        # the step-size sum over 7e4 terms, in another order
        assert torch.allclose(gs, gs1, rtol=1e-4, atol=1e-7)
        assert torch.allclose(gs, gs0, rtol=1e-4, atol=1e-7)
        assert gs.abs().min() > 0


def test_compiled_gradient_at_the_range_ends():
    """Codes exactly at Qn / Qp pass the gradient (clamp's closed range),
    the next float beyond does not, as in the eager kernel."""
    q = LSQFakeQuantize(bits=4)
    q(torch.ones(4))
    q.scale.data.fill_(0.5)
    s = 0.5 + q.eps.item()
    codes = torch.zeros(SHAPE).flatten()
    codes[:4] = torch.tensor([-8.0, 7.0, -8.0, 7.0])
    codes[2] = torch.nextafter(codes[2], torch.tensor(-9.0))
    codes[3] = torch.nextafter(codes[3], torch.tensor(8.0))
    x = (codes * s).reshape(SHAPE)
    r = torch.ones(SHAPE)
    _, gx, _, _ = _grads(q, x, r, lambda q, x: q(x))
    assert gx.flatten()[:5].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_compiled_layouts_and_bf16():
    qc, qe = _pair(bits=8)
    x, r = torch.randn(SHAPE), torch.randn(SHAPE)
    xc = x.contiguous(memory_format=torch.channels_last)
    y, gx, gs, _ = _grads(qc, xc, r, lambda q, x: q(x))
    y1, gx1, gs1, _ = _grads(qe, xc, r, lambda q, x: q(x))
    assert torch.equal(y, y1) and torch.equal(gx, gx1)
    assert torch.allclose(gs, gs1, rtol=1e-4, atol=1e-7)
    xb = x.bfloat16()  # autocast activations: float32 values, bf16 grads
    y, gx, gs, _ = _grads(qc, xb, r, lambda q, x: q(x))
    y1, gx1, gs1, _ = _grads(qe, xb, r, lambda q, x: q(x))
    assert y.dtype == y1.dtype and torch.equal(y, y1)
    assert gx.dtype == torch.bfloat16 and torch.equal(gx, gx1)
    assert torch.allclose(gs, gs1, rtol=1e-4, atol=1e-7)


def test_small_per_channel_and_lsq_plus_stay_eager():
    small = LSQFakeQuantize(bits=8)
    assert _node(small, torch.randn(4, 8, 8, 8)) == '_LSQBackward'
    for kw in (dict(per_channel=True, num_channels=SHAPE[0]),
               dict(learn_offset=True)):
        q = LSQFakeQuantize(bits=8, **kw)
        assert _node(q, torch.randn(SHAPE)) == '_LSQBackward'


def test_kernel_key_reaches_every_fake_quant_and_is_checked():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(
        8, 8, 3), torch.nn.Conv2d(8, 8, 3))
    EagerLSQQuantizer(w_bits=4, kernel='eager').prepare(net)
    assert net[1].weight_fake_quant.kernel == 'eager'
    assert net[1].input_fake_quant.kernel == 'eager'
    assert LSQFakeQuantize().kernel == 'compiled'
    with pytest.raises(ConfigError, match="'compiled' or 'eager'"):
        EagerLSQQuantizer(kernel='triton')
    with pytest.raises(ConfigError, match="'compiled' or 'eager'"):
        LSQFakeQuantize(kernel=None)


@pytest.mark.parametrize('kw', [
    dict(bits=4), dict(bits=4, per_channel=True, num_channels=16, ch_axis=1),
    dict(bits=8, learn_offset=True)
], ids=['per_tensor', 'per_channel', 'lsq_plus'])
def test_traced_step_inside_a_compiled_model(kw):
    """Inside a model ``torch.compile`` traces (``model.compile``), the
    quantizer's step is part of the graph (no break) with the eager
    values and gradients."""
    torch._dynamo.reset()
    _, qe = _pair(**kw)
    torch.manual_seed(1)
    x, gy = torch.randn(SHAPE) * 2, torch.randn(SHAPE)
    want_y, want_g = qe(x.requires_grad_()), None
    want_y.backward(gy)
    want_g = [x.grad.clone()] + [p.grad.clone() for p in qe.parameters()]
    qe.zero_grad()
    x.grad = None
    got_y = torch.compile(qe, fullgraph=True)(x)
    got_y.backward(gy)
    got_g = [x.grad] + [p.grad for p in qe.parameters()]
    assert torch.equal(got_y, want_y)
    for got, want in zip(got_g, want_g):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # plain operations only: an autograd.Function in the graph keeps
    # AOTAutograd from caching it on disk (a retrace in every process)
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    torch.compile(qe, backend=record, fullgraph=True)(x)
    assert graphs
    assert not [n for g in graphs for n in g.graph.nodes
                if 'autograd_function_apply' in str(n.target)]
