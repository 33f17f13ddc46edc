"""LSQ / LSQ+ fake quantization (MMRazor ``LearnableFakeQuantize`` subclass).

Differences to MMRazor's class, each deliberate:

* bit-width based construction: ``bits`` gives the signed symmetric range
  ``[-2^(b-1), 2^(b-1)-1]`` (LSQ, weights and activations) or, with
  ``signed=False``, ``[0, 2^b-1]``;
* **init-then-learn**: the step size is estimated from the first
  ``init_batches`` tensors seen (per tensor ``2*mean|x|/sqrt(Qp)``, the
  estimate is their running mean; no gradient reaches it meanwhile), then
  only learned.  MMRazor's observer keeps re-estimating it while
  ``static_enabled``; here ``initialized`` (a buffer, saved in checkpoints)
  marks that the estimate is complete;
* each per-tensor estimate is averaged over ranks with
  :func:`mmengine.dist.all_reduce` on any device (MMRazor's ``sync_tensor``
  only syncs CUDA tensors), so DDP ranks start identical;
* the training forward is straight-through rounding, which gives exactly
  LSQ's gradients, gradient scale ``g = 1/sqrt(N*Qp)`` (N: the number of
  elements sharing one step size), and makes LSQ+ right:
  ``x_hat = s * round(clamp((x - beta)/s, Qn, Qp)) + beta`` with a learnable
  real-valued offset ``beta`` applied *before* rounding; it is one autograd
  node (:class:`_LSQ`: the values of the plain-torch formulation, its
  gradients from two saved tensors; 112 of them per YOLOv5 step);
* the flags (``initialized``, MMRazor's ``fake_quant_enabled`` and
  ``static_enabled``) are buffers, so checkpoints carry them, but a forward
  does not read them (a host sync each on a GPU) unless they changed;
* per-channel step sizes (weights) are sized at construction, so the
  parameter never changes shape after a DDP wrapper has been built.
"""
import math

import torch
from mmengine.dist import all_reduce
from mmrazor.models import LearnableFakeQuantize
from mmrazor.models.observers import LSQObserver, LSQPerChannelObserver

from mmzsq.registry import MODELS
from mmzsq.utils.errors import ConfigError
from . import compiled_lsq

MIN_BITS, MAX_BITS = 2, 8


def check_bits(bits, what='bit-width'):
    if not isinstance(bits, int) or isinstance(bits, bool) or \
            not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(
            f'{what} must be an integer in {MIN_BITS}..{MAX_BITS}, got '
            f'{bits!r}; set e.g. w_bits=4, a_bits=8 in the quantizer config')
    return bits


def check_init_batches(k, what='init_batches'):
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(
            f'{what} must be a positive integer, got {k!r}; set e.g. '
            'a_init_batches=4 in the quantizer config')
    return k


STEP_INITS = ('lsq', 'mse', 'percentile')
KERNELS = ('compiled', 'eager')


def check_kernel(kernel, what='kernel'):
    if kernel not in KERNELS:
        raise ConfigError(f"{what} must be 'compiled' or 'eager', got "
                          f'{kernel!r}')
    return kernel


def check_step_init(init, what='init'):
    if init not in STEP_INITS:
        raise ConfigError(f"{what} must be 'lsq', 'mse' or 'percentile', "
                          f'got {init!r}')
    return init


def check_percentile(p, what='percentile'):
    if not isinstance(p, (int, float)) or isinstance(p, bool) or \
            not 0.5 <= p <= 1.0:
        raise ConfigError(
            f'{what} must be a fraction in [0.5, 1], got {p!r}; set e.g. '
            f'{what}=0.9999 (the 99.99th percentile of |x|)')
    return float(p)


def _mean_over_ranks(t):
    t = t.clone()
    all_reduce(t, op='mean')  # a no-op when not distributed
    return t


def _dot(a, b, dims=None):
    """``(a * b).sum(dims)``; one BLAS dot for whole contiguous tensors."""
    if dims is None and a.is_contiguous() and b.is_contiguous() and \
            a.dtype == b.dtype and a.dtype in (torch.float32, torch.float64):
        return torch.dot(a.view(-1), b.view(-1))
    return (a * b).sum() if dims is None else (a * b).sum(dims)


def _open_range(qn, qp, dtype):
    """``(lo, hi)`` with ``lo < v < hi  <=>  qn <= v <= qp`` for every
    ``v`` of ``dtype`` (the neighbouring representable numbers), so that
    ``hardtanh_backward``'s open interval is clamp's closed one."""
    b = torch.tensor([qn, qp], dtype=dtype)
    lo = torch.nextafter(b[:1], b[:1] - 1).item()
    hi = torch.nextafter(b[1:], b[1:] + 1).item()
    return lo, hi


_OPEN_RANGES = {}


class _LSQ(torch.autograd.Function):
    """The LSQ / LSQ+ training forward as one autograd node.

    Values: exactly the straight-through formulation
    ``round_ste(clamp((x - beta) / s, Qn, Qp)) * s + beta`` with
    ``s = grad_scale(|scale| + eps, g)``, ``beta = grad_scale(offset, g)``
    (the same float operations).  Gradients: those of that formulation
    (LSQ's), from the saved codes ``v = (x - beta) / s`` and
    ``R = round(clamp(v, Qn, Qp))`` instead of autograd's chain of eight
    nodes over the activation:

    * ``dL/dx = dL/dy`` where ``Qn <= v <= Qp``, else 0;
    * ``dL/ds = sum(dL/dy * (R - v))`` inside plus ``sum(dL/dy * R)``
      over the clipped elements;
    * ``dL/dbeta = sum(dL/dy)`` over the clipped elements;
    * both times ``g`` (the gradient scale), and ``sign(scale)`` for the
      step size (``|scale|``).

    Per channel (``ch_axis``), the sums run over the other dimensions.
    """

    @staticmethod
    def forward(ctx, x, scale, offset, eps, g, qn, qp, learn_offset,
                ch_axis):
        a = scale.abs() + eps
        s = (a - a * g) + a * g  # the value of _grad_scale(a, g)
        beta = (offset - offset * g) + offset * g if learn_offset else None
        if ch_axis is not None:
            shape = [1] * x.dim()
            shape[ch_axis] = -1
            s = s.reshape(shape)
            beta = beta.reshape(shape) if beta is not None else None
        v = (x - beta) / s if beta is not None else x / s
        r = v.clamp(qn, qp).round_()
        y = r * s
        if beta is not None:
            y = y + beta
        ctx.save_for_backward(v, r, scale)
        ctx.g, ctx.qn, ctx.qp = g, qn, qp
        ctx.learn_offset, ctx.x_dtype = learn_offset, x.dtype
        ctx.dims = None if ch_axis is None else \
            [d for d in range(x.dim()) if d != ch_axis % x.dim()]
        return y

    @staticmethod
    def backward(ctx, gy):
        v, r, scale = ctx.saved_tensors
        g, dims = ctx.g, ctx.dims
        key = (ctx.qn, ctx.qp, v.dtype)
        if key not in _OPEN_RANGES:
            _OPEN_RANGES[key] = _open_range(*key)
        lo, hi = _OPEN_RANGES[key]
        gy = gy.to(v.dtype)
        # dL/dy where Qn <= v <= Qp (a NaN code: a NaN loss anyway)
        gx = torch.ops.aten.hardtanh_backward(gy, v, lo, hi)
        gscale = goffset = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            clipped = gy - gx  # exactly dL/dy or 0
        if ctx.needs_input_grad[1]:
            # inside and clipped parts apart: no cancellation between
            # sum(dL/dy * R) and sum(dL/dx * v) (autograd's two terms)
            gs = _dot(gx, r - v, dims) + _dot(clipped, r, dims)
            gscale = (gs.reshape(scale.shape) * g) * scale.sgn()
        if ctx.learn_offset and ctx.needs_input_grad[2]:
            gb = clipped.sum() if dims is None else clipped.sum(dims)
            goffset = gb.reshape(scale.shape) * g
        if ctx.needs_input_grad[0]:
            gx = gx.to(ctx.x_dtype)
        else:
            gx = None
        return gx, gscale, goffset, None, None, None, None, None, None


@MODELS.register_module()
class LSQFakeQuantize(LearnableFakeQuantize):
    """LSQ (or LSQ+ with ``learn_offset=True``) fake quantizer.

    Args:
        bits (int): 2..8.
        signed (bool): signed range ``[-2^(b-1), 2^(b-1)-1]`` (default, LSQ)
            or unsigned ``[0, 2^b-1]``.
        learn_offset (bool): LSQ+ asymmetric quantization with a learnable
            real offset ``beta`` (activations).  Init: min/max of the first
            tensor (``s=(max-min)/(Qp-Qn)``, ``beta=min-Qn*s``).
        per_channel (bool): one step size per output channel (``ch_axis``);
            needs ``num_channels``.
        init_batches (int): number of forward passes the initial estimate
            is averaged over (1: the first tensor only).  Until the last of
            them the step size (and offset) carries no gradient; the
            running sum is not saved (checkpoints hold ``initialized``).
        init (str): how a symmetric step size is first estimated:
            ``'lsq'`` (``2*mean|x|/sqrt(Qp)``, the LSQ paper's) or
            ``'mse'`` (the step, out of 100 clipping ratios of ``max|x|``,
            with the least squared quantization error of ``x``: at 4 bits
            LSQ's estimate clips at about 4 sigma of a Gaussian tensor,
            the MSE one at about 2.5 sigma), or ``'percentile'``
            (``q_p(|x|)/Qp``: the range ends at the ``percentile`` quantile
            of ``|x|``, so it follows a long tail, e.g. of SiLU
            activations, which LSQ's mean-based estimate ignores).
        percentile (float): the quantile of ``init='percentile'``, in
            ``[0.5, 1]`` (1: ``max|x|``).
        kernel (str): the training step of a per-tensor symmetric
            quantizer: ``'compiled'`` (default; one fused loop per
            direction from ``torch.compile``, see
            :mod:`~mmzsq.models.fake_quants.compiled_lsq`; tensors under
            ``2**16`` elements, per-channel and LSQ+ quantizers, and devices
            where it does not compile use the eager one) or ``'eager'``.
    """

    def __init__(self, bits=8, signed=True, learn_offset=False,
                 per_channel=False, num_channels=1, ch_axis=0,
                 init_batches=1, init='lsq', percentile=0.9999,
                 kernel='compiled'):
        check_bits(bits)
        self.kernel = check_kernel(kernel)
        check_init_batches(init_batches)
        self.init = check_step_init(init)
        self.percentile = check_percentile(percentile)
        if signed:
            qmin, qmax = -2**(bits - 1), 2**(bits - 1) - 1
        else:
            qmin, qmax = 0, 2**bits - 1
        observer = LSQPerChannelObserver if per_channel else LSQObserver
        obs_kwargs = dict(
            dtype=torch.qint8 if signed else torch.quint8,
            qscheme=torch.per_channel_symmetric
            if per_channel else torch.per_tensor_symmetric)
        if per_channel:
            obs_kwargs['ch_axis'] = ch_axis
        super().__init__(observer, quant_min=qmin, quant_max=qmax,
                         use_grad_scaling=True,
                         zero_point_trainable=learn_offset, **obs_kwargs)
        self.bits, self.signed = bits, signed
        self.learn_offset, self.per_channel = learn_offset, per_channel
        self.ch_axis = ch_axis
        n = num_channels if per_channel else 1
        self.scale = torch.nn.Parameter(torch.ones(n))
        # LSQ+: ``zero_point`` holds the real-valued offset beta (not an
        # integer zero point); plain LSQ keeps it a zero buffer.
        if learn_offset:
            self.zero_point = torch.nn.Parameter(torch.zeros(n))
        else:
            self.zero_point = torch.zeros(n)
        # bit-width + range, so checkpoints carry (and check) them
        self.register_buffer('qrange', torch.tensor([bits, qmin, qmax]))
        self.register_buffer('initialized', torch.tensor([0],
                                                         dtype=torch.uint8))
        self.init_batches = init_batches
        self._init_seen, self._init_sum = 0, None  # not saved
        # learn from the start (requires_grad fixed before any DDP wrapper)
        self.toggle_qparam_learning(True)
        self.toggle_observer_update(False)

    # ------------------------------------------------------------------
    def _view(self, t, x):
        if not self.per_channel:
            return t
        shape = [1] * x.dim()
        shape[self.ch_axis] = -1
        return t.reshape(shape)

    @torch.no_grad()
    def estimate(self, x):
        """Step size (and offset) estimated from ``x`` alone, averaged over
        ranks: ``[scale]`` or, LSQ+, ``[scale, offset]``."""
        x = x.detach().float()
        if self.per_channel:
            dims = [d for d in range(x.dim()) if d != self.ch_axis % x.dim()]
            absmean = x.abs().mean(dim=dims)
            xmin, xmax = x.amin(dim=dims), x.amax(dim=dims)
        else:
            self.activation_post_process(x)  # MMRazor LSQObserver stats
            absmean = self.activation_post_process.tensor_norm.reshape(1)
            xmin, xmax = x.min().reshape(1), x.max().reshape(1)
        if self.learn_offset:
            span = (xmax - xmin).clamp(min=1e-8)
            scale = span / (self.quant_max - self.quant_min)
            offset = _mean_over_ranks(xmin - self.quant_min * scale)
            return [_mean_over_ranks(scale.clamp(min=1e-8)), offset]
        if self.init == 'mse':
            scale = self._mse_scale(x)
        elif self.init == 'percentile':
            scale = self._percentile_scale(x)
        else:
            scale = 2 * absmean / math.sqrt(self.quant_max)
        return [_mean_over_ranks(scale.clamp(min=1e-8))]

    def _rows(self, x):
        """``x`` as one row per step size (per channel: a row each)."""
        if self.per_channel:
            ax = self.ch_axis % x.dim()
            return x.movedim(ax, 0).reshape(x.shape[ax], -1)
        return x.reshape(1, -1)

    def _percentile_scale(self, x):
        """Per tensor (or per channel) ``q_p(|x|) / Qp``: the k-th smallest
        ``|x|``, ``k = ceil(p * n)`` (``kthvalue``: no size limit, unlike
        ``torch.quantile``)."""
        flat = self._rows(x).abs()
        k = min(max(1, math.ceil(self.percentile * flat.shape[1])),
                flat.shape[1])
        return flat.kthvalue(k, dim=1).values / self.quant_max

    def _mse_scale(self, x, grid: int = 100):
        """Per tensor (or per channel) the step ``r * max|x| / Qp``, ``r``
        in ``(0, 1]`` on a grid, that minimises ``||Q(x) - x||^2``."""
        flat = self._rows(x)
        amax = flat.abs().amax(1).clamp(min=1e-8)
        qn, qp = self.quant_min, self.quant_max
        best_err = torch.full_like(amax, float('inf'))
        best = amax / qp
        for r in torch.linspace(1.0 / grid, 1.0, grid).tolist():
            s = (amax * r / qp)[:, None]
            err = ((flat / s).round().clamp(qn, qp) * s - flat).pow(2).sum(1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, s[:, 0], best)
        return best

    @torch.no_grad()
    def init_from(self, x):
        """Add ``x``'s estimate to the running mean and set step size (and
        offset) to it; ``initialized`` once ``init_batches`` were seen."""
        est = self.estimate(x)
        if self._init_seen == 0 or self._flag('static_enabled'):
            self._init_seen, self._init_sum = 0, [torch.zeros_like(e)
                                                  for e in est]
        self._init_seen += 1
        for acc, e in zip(self._init_sum, est):
            acc += e
        mean = [acc / self._init_seen for acc in self._init_sum]
        self.scale.data.copy_(mean[0].to(self.scale))
        if self.learn_offset:
            self.zero_point.data.copy_(mean[1].to(self.zero_point))
        if self._init_seen >= self.init_batches or \
                self._flag('static_enabled'):
            self.initialized.fill_(1)
            self._init_seen, self._init_sum = 0, None

    def _flag(self, name):
        """``bool(self.<name>[0])`` of a flag buffer without reading the
        tensor each call (on a GPU every read is a host sync): the value is
        cached with the buffer's identity and version counter, so any
        in-place change (``fill_``, ``copy_``, ``load_state_dict``,
        MMRazor's ``toggle_*``) or a new tensor (``.to()``, deepcopy) is
        read afresh.  A write through ``.data`` keeps the version: set
        flags with the toggles or on the buffer itself."""
        t = self._buffers[name]
        cache = self.__dict__.setdefault('_flag_cache', {})
        hit = cache.get(name)
        try:
            version = t._version
        except RuntimeError:  # an inference-mode tensor has no version
            return bool(t[0])
        # ``initialized`` is read afresh while False (the first passes
        # only): then even a write through ``.data`` (which keeps the
        # version, e.g. an EMA copying the live state) is seen
        if hit is None or hit[0] is not t or hit[1] != version or \
                (not hit[2] and name == 'initialized'):
            hit = cache[name] = (t, version, bool(t[0]))
        return hit[2]

    def forward(self, x):
        if torch.compiler.is_compiling():
            return self._traced(x)
        if not self._flag('initialized') or self._flag('static_enabled'):
            self.init_from(x)
        if not self._flag('fake_quant_enabled'):
            return x
        if not torch.is_grad_enabled():  # inference: one fused kernel
            return self._fused(x)
        n = x.numel() / self.scale.numel()  # elements per step size
        g = 0.0 if not self._flag('initialized') else \
            1.0 / math.sqrt(n * self.quant_max)
        if self.kernel == 'compiled' and not self.per_channel and \
                not self.learn_offset and x.numel() >= compiled_lsq.MIN_NUMEL \
                and compiled_lsq.available(x.device):
            return compiled_lsq.CompiledLSQ.apply(
                x, self.scale, self.eps, g, self.quant_min, self.quant_max)
        return _LSQ.apply(x, self.scale, self.zero_point, self.eps, g,
                          self.quant_min, self.quant_max, self.learn_offset,
                          self.ch_axis if self.per_channel else None)

    def _traced(self, x):
        """The training step as ``torch.compile`` traces it into a model's
        graph (:class:`~mmzsq.models.algorithms.QuantDistill`'s
        ``compile``): no flag is read (each read would break the graph),
        so the caller runs it only on initialised quantizers with fake
        quantization on and the observer off.  The straight-through
        formulation, autograd giving LSQ's gradients: plain operations, so
        that AOTAutograd caches the graph on disk (an autograd.Function,
        e.g. :class:`CompiledLSQ`, makes it retrace and repartition the
        whole graph in every process: about 15 s on 2 cores)."""
        g = 1.0 / math.sqrt(x.numel() / self.scale.numel() * self.quant_max)
        a = self.scale.abs() + self.eps
        s = self._view((a - a * g).detach() + a * g, x)
        beta = None
        if self.learn_offset:
            b = self.zero_point
            beta = self._view((b - b * g).detach() + b * g, x)
            x = x - beta
        v = (x / s).clamp(self.quant_min, self.quant_max)
        # round(v) - v is exact in floating point (|round(v) - v| <= 0.5
        # <= |v| or round(v) = 0), so the value is round(v) * s
        y = ((v.round() - v).detach() + v) * s
        return y + beta if beta is not None else y

    def _fused(self, x):
        s = (self.scale.detach().abs() + self.eps).float()
        beta = self._view(self.zero_point.detach(), x) \
            if self.learn_offset else None
        y = x - beta if beta is not None else x
        if self.per_channel:
            y = torch.fake_quantize_per_channel_affine(
                y.float(), s, torch.zeros_like(s, dtype=torch.int32),
                self.ch_axis % x.dim(), self.quant_min, self.quant_max)
        else:
            y = torch.fake_quantize_per_tensor_affine(
                y.float(), float(s), 0, self.quant_min, self.quant_max)
        y = y.to(x.dtype)
        return y + beta if beta is not None else y

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + 'qrange'
        if key in state_dict and \
                not torch.equal(state_dict[key].cpu(), self.qrange.cpu()):
            b, lo, hi = state_dict[key].tolist()
            raise ConfigError(
                f'{prefix[:-1]}: checkpoint quantized to {b} bits '
                f'[{lo}, {hi}] but the config builds {self.bits} bits '
                f'[{self.quant_min}, {self.quant_max}]; use the config the '
                'checkpoint was trained with')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self):
        s = self.scale.detach()
        return (f'bits={self.bits}, range=[{self.quant_min}, '
                f'{self.quant_max}], per_channel={self.per_channel}, '
                f'lsq_plus={self.learn_offset}, '
                f'initialized={bool(self.initialized[0])}, '
                f'scale={s.flatten()[:4].tolist()}')
