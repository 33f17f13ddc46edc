"""The per-tensor symmetric LSQ training step as two compiled kernels.

Eager PyTorch runs the LSQ forward as four passes over the activation (divide,
clamp, round, multiply) and its backward as five more, and keeps two
activation-sized tensors (the codes ``v`` and their rounding ``R``) for the
backward.  ``torch.compile`` (inductor: C++/OpenMP on CPU, Triton on CUDA)
fuses each direction into one loop:

* forward: ``y = round(clamp(x / s, Qn, Qp)) * s``, one read of ``x``, one
  write of ``y``; only ``x`` is kept for the backward;
* backward: ``dL/dx = dL/dy`` where ``Qn <= x / s <= Qp`` (else 0) and the
  step size's ``sum(dL/dy * (R - v))`` inside plus ``sum(dL/dy * R)`` over
  the clipped elements, in one pass with the reduction.

Same values as :class:`~mmzsq.models.fake_quants.lsq_fake_quantize._LSQ`
(the same float operations: forward and ``dL/dx`` bit-equal, the step-size
sum in another summation order).  Measured on this project's CPU machine, 1
thread, fwd + bwd of a ``[8, 64, 80, 80]`` activation: 22 ms eager, 6.6 ms
compiled.

Both functions are compiled once per process with ``dynamic=True`` (one
kernel serves every activation shape; inductor's on-disk cache makes later
processes' compiles short).  :func:`available` compiles and runs them once on
a small tensor per device type; where that fails (no C++ compiler, no
Triton) it logs one warning and :class:`LSQFakeQuantize` keeps the eager
kernel.
"""
import torch
from mmengine.logging import print_log

# below this many elements the compiled call's fixed cost (guards, launch)
# exceeds what fusing saves (measured: a 64x32x3x3 weight, 0.18 ms compiled
# against 0.13 ms eager)
MIN_NUMEL = 1 << 16


def _forward(x, s, qn: float, qp: float):
    return torch.round(torch.clamp(x / s, qn, qp)) * s


def _backward(gy, x, s, qn: float, qp: float):
    v = x / s
    inside = (v >= qn) & (v <= qp)
    r = torch.round(torch.clamp(v, qn, qp))
    gx = torch.where(inside, gy, 0.0)
    gs = torch.where(inside, gy * (r - v), gy * r).sum()
    return gx, gs


_COMPILED = {}
_AVAILABLE = {}


def _kernels():
    if not _COMPILED:
        _COMPILED['fwd'] = torch.compile(_forward, dynamic=True)
        _COMPILED['bwd'] = torch.compile(_backward, dynamic=True)
    return _COMPILED['fwd'], _COMPILED['bwd']


def _matches_eager(device) -> bool:
    """Run both kernels as :class:`CompiledLSQ` calls them (no grad, plain
    tensors) on a small tensor; compare with the uncompiled functions."""
    fwd, bwd = _kernels()
    with torch.no_grad():
        x = torch.linspace(-3, 3, 64, device=device).reshape(2, 2, 4, 4)
        s = torch.full((1, ), 0.5, device=device)
        gy = torch.ones_like(x)
        return bool(torch.equal(fwd(x, s, -4.0, 3.0),
                                _forward(x, s, -4.0, 3.0))) and \
            bool(torch.equal(bwd(gy, x, s, -4.0, 3.0)[0],
                             _backward(gy, x, s, -4.0, 3.0)[0]))


def available(device: torch.device) -> bool:
    """Whether the compiled kernels run on ``device``'s type (tried once
    per type; a failure is logged once and disables them there)."""
    kind = torch.device(device).type
    if kind not in _AVAILABLE:
        try:
            _AVAILABLE[kind] = _matches_eager(device)
            if not _AVAILABLE[kind]:
                raise RuntimeError('compiled values differ from eager ones')
        except Exception as e:  # no compiler / backend here: stay eager
            _AVAILABLE[kind] = False
            print_log(
                f'LSQFakeQuantize: the compiled LSQ kernel does not run on '
                f'{kind} ({type(e).__name__}: {str(e).splitlines()[0]}); '
                "using the eager one (set the quantizer's kernel='eager' "
                'to skip this check)', logger='current', level=30)
    return _AVAILABLE[kind]


class CompiledLSQ(torch.autograd.Function):
    """``x_hat`` of per-tensor symmetric LSQ with its LSQ gradients.

    The step size is ``|scale| + eps`` (its value through the
    gradient-scale identity ``(a - a g) + a g``, as the eager kernel);
    ``g`` is the gradient scale; the step size's gradient goes to ``scale``
    (times ``sign(scale)``).
    """

    @staticmethod
    def forward(ctx, x, scale, eps, g, qn, qp):
        fwd, _ = _kernels()
        a = scale.abs() + eps
        s = (a - a * g) + a * g
        ctx.save_for_backward(x, scale, s)
        ctx.g, ctx.qn, ctx.qp = g, float(qn), float(qp)
        # detach: a Parameter (a weight) would be its own graph, with
        # static shapes
        return fwd(x.detach(), s, ctx.qn, ctx.qp)

    @staticmethod
    def backward(ctx, gy):
        x, scale, s = ctx.saved_tensors
        _, bwd = _kernels()
        gx, gs = bwd(gy, x.detach(), s, ctx.qn, ctx.qp)
        gscale = None
        if ctx.needs_input_grad[1]:
            gscale = (gs.reshape(scale.shape) * ctx.g) * scale.sgn()
        gx = gx.to(x.dtype) if ctx.needs_input_grad[0] else None
        return gx, gscale, None, None, None, None
