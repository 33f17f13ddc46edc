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

Both are :class:`~mmzsq.utils.compiled_kernel.CompiledKernel`: compiled
once per process; where they do not compile (no C++ compiler, no Triton)
one warning is logged and :class:`LSQFakeQuantize` keeps the eager kernel.
"""
import torch

from mmzsq.utils.compiled_kernel import CompiledKernel

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


def _example(device):
    x = torch.linspace(-3, 3, 64, device=device).reshape(2, 2, 4, 4)
    return x, torch.full((1, ), 0.5, device=device), -4.0, 3.0


FORWARD = CompiledKernel(_forward, _example, 'LSQFakeQuantize',
                         "the quantizer's kernel='eager'")
BACKWARD = CompiledKernel(
    _backward, lambda device: (torch.ones(2, 2, 4, 4, device=device), ) +
    _example(device), 'LSQFakeQuantize', "the quantizer's kernel='eager'")


def available(device) -> bool:
    """Whether both compiled kernels run on ``device``'s type (tried once
    per type; a failure is logged once and disables them there)."""
    return FORWARD.ready(device) and BACKWARD.ready(device)


class CompiledLSQ(torch.autograd.Function):
    """``x_hat`` of per-tensor symmetric LSQ with its LSQ gradients.

    The step size is ``|scale| + eps`` (its value through the
    gradient-scale identity ``(a - a g) + a g``, as the eager kernel);
    ``g`` is the gradient scale; the step size's gradient goes to ``scale``
    (times ``sign(scale)``).

    Eager steps only: inside a model that ``torch.compile`` traces, the
    quantizer takes its straight-through form instead
    (:meth:`LSQFakeQuantize._traced`; an autograd.Function in a graph keeps
    AOTAutograd from caching it).
    """

    @staticmethod
    def forward(ctx, x, scale, eps, g, qn, qp):
        a = scale.abs() + eps
        s = (a - a * g) + a * g
        ctx.save_for_backward(x, scale, s)
        ctx.g, ctx.qn, ctx.qp = g, float(qn), float(qp)
        # detach: a Parameter (a weight) would be its own graph, with
        # static shapes
        return FORWARD(x.detach(), s, ctx.qn, ctx.qp)

    @staticmethod
    def backward(ctx, gy):
        x, scale, s = ctx.saved_tensors
        gx, gs = BACKWARD(gy, x.detach(), s, ctx.qn, ctx.qp)
        gscale = None
        if ctx.needs_input_grad[1]:
            gscale = (gs.reshape(scale.shape) * ctx.g) * scale.sgn()
        gx = gx.to(x.dtype) if ctx.needs_input_grad[0] else None
        return gx, gscale, None, None, None, None
