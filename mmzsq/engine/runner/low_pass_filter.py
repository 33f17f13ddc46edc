"""Stage I's low-pass filter on the synthetic images: a Gaussian in the
frequency domain, applied on a schedule within each synthesis stage."""
import numbers

import torch
from torch import Tensor

from mmzsq.utils.config_switch import ConfigSwitch
from mmzsq.utils.errors import ConfigError


def low_pass(images: Tensor, d0: float) -> Tensor:
    """SynQ's Gaussian low-pass filter ``H = exp(-D^2 / 2 D0^2)`` in the
    frequency domain; ``d0`` as a fraction of the image size."""
    h, w = images.shape[-2:]
    fy = torch.fft.fftfreq(h, device=images.device)[:, None]
    fx = torch.fft.fftfreq(w, device=images.device)[None, :]
    d2 = fy.pow(2) + fx.pow(2)  # cycles/pixel, D=0.5 at Nyquist
    hmask = torch.exp(-d2 / (2 * (d0 * 0.5)**2))
    spec = torch.fft.fft2(images.float()) * hmask
    return torch.fft.ifft2(spec).real.to(images.dtype)


class LowPassFilter(ConfigSwitch):
    """``train_cfg.synthesis.low_pass_filter=dict(d0=0.5, interval=1,
    start=0., stop=1.)``: after step ``s`` (1-based) of a stage of ``N``
    steps the images are replaced by :func:`low_pass` of them when ``s`` is
    a multiple of ``interval`` and ``start * N < s <= stop * N`` (the window
    as fractions of each stage).  ``d0``: the cutoff, the Gaussian's
    standard deviation as a fraction of the Nyquist frequency (0.5
    cycles/pixel); frequencies above it keep less than ``exp(-1/2)`` of
    their amplitude.  Bad values are a :class:`ConfigError`."""

    KEYS = ('d0', 'interval', 'start', 'stop')
    WHERE = 'train_cfg.synthesis.low_pass_filter'
    EXAMPLE = 'dict(d0=0.5, interval=50, start=0.0, stop=1.0)'

    def __init__(self, d0: float = 0.5, interval: int = 1,
                 start: float = 0., stop: float = 1.):
        w = self.WHERE
        if not _number(d0) or d0 <= 0:
            raise ConfigError(
                f'{w}.d0={d0!r}: give the cutoff as a fraction of the '
                'Nyquist frequency > 0, e.g. d0=0.5')
        if isinstance(interval, bool) or not isinstance(
                interval, numbers.Integral) or interval < 1:
            raise ConfigError(f'{w}.interval={interval!r}: give a whole '
                              'number of steps >= 1, e.g. interval=50')
        if not (_number(start) and _number(stop)
                and 0 <= start < stop <= 1):
            raise ConfigError(
                f'{w}: start={start!r}, stop={stop!r} is no window; give '
                'fractions of the stage with 0 <= start < stop <= 1, e.g. '
                'start=0.0, stop=0.5')
        self.d0, self.interval = float(d0), int(interval)
        self.start, self.stop = float(start), float(stop)

    def applies(self, step: int, iters: int) -> bool:
        """Whether the filter runs after ``step`` of a stage of ``iters``."""
        return (step % self.interval == 0
                and self.start * iters < step <= self.stop * iters)

    def __call__(self, images: Tensor) -> Tensor:
        return low_pass(images, self.d0)


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)
