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
* the forward is written with straight-through rounding in plain torch, which
  gives exactly LSQ's gradients, gradient scale ``g = 1/sqrt(N*Qp)`` (N: the
  number of elements sharing one step size), and makes LSQ+ right:
  ``x_hat = s * round(clamp((x - beta)/s, Qn, Qp)) + beta`` with a learnable
  real-valued offset ``beta`` applied *before* rounding;
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


def _grad_scale(x, g):
    """Value of ``x``, gradient multiplied by ``g`` (LSQ's trick)."""
    return (x - x * g).detach() + x * g


def _round_ste(x):
    return (x.round() - x).detach() + x


def _mean_over_ranks(t):
    t = t.clone()
    all_reduce(t, op='mean')  # a no-op when not distributed
    return t


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
            the MSE one at about 2.5 sigma).
    """

    def __init__(self, bits=8, signed=True, learn_offset=False,
                 per_channel=False, num_channels=1, ch_axis=0,
                 init_batches=1, init='lsq'):
        check_bits(bits)
        check_init_batches(init_batches)
        if init not in ('lsq', 'mse'):
            raise ConfigError(f"LSQFakeQuantize init must be 'lsq' or "
                              f"'mse', got {init!r}")
        self.init = init
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
        else:
            scale = 2 * absmean / math.sqrt(self.quant_max)
        return [_mean_over_ranks(scale.clamp(min=1e-8))]

    def _mse_scale(self, x, grid: int = 100):
        """Per tensor (or per channel) the step ``r * max|x| / Qp``, ``r``
        in ``(0, 1]`` on a grid, that minimises ``||Q(x) - x||^2``."""
        if self.per_channel:
            ax = self.ch_axis % x.dim()
            flat = x.movedim(ax, 0).reshape(x.shape[ax], -1)
        else:
            flat = x.reshape(1, -1)
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
        if self._init_seen == 0 or self.static_enabled[0]:
            self._init_seen, self._init_sum = 0, [torch.zeros_like(e)
                                                  for e in est]
        self._init_seen += 1
        for acc, e in zip(self._init_sum, est):
            acc += e
        mean = [acc / self._init_seen for acc in self._init_sum]
        self.scale.data.copy_(mean[0].to(self.scale))
        if self.learn_offset:
            self.zero_point.data.copy_(mean[1].to(self.zero_point))
        if self._init_seen >= self.init_batches or self.static_enabled[0]:
            self.initialized.fill_(1)
            self._init_seen, self._init_sum = 0, None

    def forward(self, x):
        if not self.initialized[0] or self.static_enabled[0]:
            self.init_from(x)
        if not self.fake_quant_enabled[0]:
            return x
        qn, qp = self.quant_min, self.quant_max
        if not torch.is_grad_enabled():  # inference: one fused kernel
            return self._fused(x)
        n = x.numel() / self.scale.numel()  # elements per step size
        g = 0.0 if not self.initialized[0] else 1.0 / math.sqrt(n * qp)
        s = self._view(_grad_scale(self.scale.abs() + self.eps, g), x)
        if self.learn_offset:
            beta = self._view(_grad_scale(self.zero_point, g), x)
            return _round_ste(((x - beta) / s).clamp(qn, qp)) * s + beta
        return _round_ste((x / s).clamp(qn, qp)) * s

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
