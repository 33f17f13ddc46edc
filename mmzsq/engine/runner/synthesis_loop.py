"""The inversion engine: an MMEngine Loop whose iterations are pixel-update
steps (paper §3.1, Eq. 6)."""
import datetime
import math
import time
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.runner import BaseLoop
from torch import Tensor

from mmzsq.models.utils.compiled_parts import CompiledParts
from mmzsq.registry import HOOKS, LOOPS, MODELS, TASK_UTILS
from mmzsq.utils.errors import ConfigError
from .low_pass_filter import LowPassFilter


class _Steps:
    """Stands in for a dataloader: ``len`` = number of pixel-update steps
    (MMEngine hooks ask ``len(runner.train_dataloader)``)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return max(self.n, 1)


@LOOPS.register_module()
class SynthesisLoop(BaseLoop):
    """Synthesise ``batches`` (indices of batches of ``batch_size`` images
    out of ``num_images``) through ``stages``.

    Each stage: ``dict(resolution=int|(h, w), iters=int,
    label_sampling=bool, reinit_images=bool, lr=float, det_terms=[...])``
    (``det_terms``: the detection-loss terms kept in this stage, e.g.
    ``['loss_cls', 'loss_bbox']`` drops YOLOv5's objectness, whose negatives
    push every unlabelled cell to "no object"; default all).  Labels live
    normalised between stages; images are re-initialised from noise
    (``reinit_images=True``, the paper's two-stage schedule) or resized.  A
    stage with ``iters=0`` leaves Gaussian-noise images (the noise baseline).

    Loss = ``det_loss_weight * L_det + prior_loss + tv_loss + l2_loss`` with
    the registered modules ``prior_loss`` (``BNStatisticsLoss`` or
    ``PatchSimilarityEntropyLoss``), ``TotalVariationLoss``, ``ImageL2Loss``
    (each carrying its own ``loss_weight``).  Adam with cosine annealing on
    [0, 1] pixel images, cutout / optional jitter + flip, clamp to [0, 1].

    The loop runs inside another loop's Runner (it is not the Runner's
    train loop, see :class:`ZSQTrainLoop`), so it calls no Runner hook of
    training.  Its own ``hooks`` (e.g. :class:`AdaptiveLabelSamplingHook`)
    and any Runner hook that defines them get the custom hook points
    ``after_synthesis_iter(runner, loop)`` and
    ``after_synthesis_batch(runner, loop, batch)``.  Every
    ``log_interval`` steps it logs the loss terms, img-it/s and the ETA;
    ``progress_bar`` shows MMEngine's ProgressBar over the batches.
    ``keep_best``: write, per batch, the images of the step with the lowest
    loss in the last stage (the official code keeps such a snapshot)
    instead of the last step's.
    ``resolution_scaled_terms``: ``{term: base}`` multiplies a detection
    term by ``(h * w) / base**2`` at a stage of ``h x w`` px.  YOLOv5 scales
    its objectness gain so with the training size (``(imgsz / 640)**2``;
    mmyolo's configs fold it into ``loss_obj.loss_weight`` for 640 px), so
    ``dict(loss_obj=640)`` gives a 160-px label stage the objectness weight
    YOLOv5 itself would use at 160 px (1/16): at full weight its negatives
    hold every unlabelled cell at "no object" and ALS finds nothing to add.
    ``low_pass_filter``: ``dict(d0, interval, start, stop)``, a Gaussian
    low-pass filter on the images after every ``interval``-th step within
    a window of each stage (:class:`LowPassFilter`); ``None``: off.
    ``compile``: ``True`` (or ``torch.compile`` arguments) runs the
    teacher's backbone, neck and dense-head module, BN-statistics hooks
    included, as compiled graphs in the pixel-update steps
    (:class:`~mmzsq.models.utils.CompiledParts`; ALS and the per-image
    losses stay eager).  Each new input size compiles anew (minutes on 2
    CPU cores, seconds from inductor's disk cache), so it pays off in long
    stages only; ``'auto'``: on when this loop runs at least
    :data:`~mmzsq.models.utils.compiled_parts.AUTO_MIN_STEPS` steps (the
    YOLOv5 configs); default False.
    """

    def __init__(self, runner, dataloader=None, *, adapter, writer,
                 batches: Sequence[int], num_images: int, batch_size: int,
                 stages: Sequence[dict],
                 label_sampler: dict = dict(type='mmzsq.RandomBoxSampler'),
                 det_loss_weight: float = 0.5,
                 prior_loss: Optional[dict] = dict(
                     type='mmzsq.BNStatisticsLoss', loss_weight=0.01),
                 tv_loss: Optional[dict] = None,
                 l2_loss: Optional[dict] = dict(type='mmzsq.ImageL2Loss',
                                                loss_weight=5e-4),
                 lr: float = 1e-2, betas=(0.9, 0.999), eta_min: float = 0.,
                 init_mean: float = 0.5, init_std: float = 0.2,
                 cutout: Optional[dict] = dict(prob=0.5, scale=(0.02, 0.2)),
                 jitter: int = 0, flip: bool = False,
                 low_pass_filter: Optional[dict] = None,
                 amp: bool = True, channels_last: bool = True,
                 size_divisor: int = 32,
                 seed: int = 0, progress_bar: bool = False,
                 hooks: Sequence = (), log_interval: int = 50,
                 keep_best: bool = False,
                 resolution_scaled_terms: Optional[Dict[str, int]] = None,
                 compile: Union[bool, dict, str] = False,
                 on_batch_done=None):
        super().__init__(runner, _Steps(0))
        self.adapter, self.writer = adapter, writer
        self.batches = list(batches)
        self.num_images, self.batch_size = num_images, batch_size
        self.stages = [dict(s) for s in stages]
        for s in self.stages:
            if 'resolution' not in s or 'iters' not in s:
                raise ConfigError('each synthesis stage needs resolution= '
                                  f'and iters=, got {s}')
            if any(v % size_divisor for v in self._size(s['resolution'])):
                raise ConfigError(
                    f"synthesis stage resolution {s['resolution']} is not a "
                    f'multiple of {size_divisor} (the detector\'s largest '
                    'stride); round it, e.g. 160, 320, 640, (800, 1344)')
        self.label_sampler = TASK_UTILS.build(label_sampler) \
            if isinstance(label_sampler, dict) else label_sampler
        self.det_loss_weight = det_loss_weight
        model = adapter.model
        self.prior_loss = MODELS.build(prior_loss).register(model) \
            if prior_loss else None
        # an image prior weighed 0 (YOLOv5's l2_loss) is not computed: it
        # cost 4 % of a step (160 px, batch 8) for a zero term
        self.tv_loss = self._image_prior(tv_loss)
        self.l2_loss = self._image_prior(l2_loss)
        self.lr, self.betas, self.eta_min = lr, tuple(betas), eta_min
        self.init_mean, self.init_std = init_mean, init_std
        self.cutout, self.jitter, self.flip = cutout, jitter, flip
        self.low_pass_filter = LowPassFilter.build(low_pass_filter)
        self.device = adapter.device
        # bf16 autocast and channels_last on CUDA only: on a 2-core
        # AVX512-BF16 CPU the whole loop ran 15x slower in bf16 (7 vs 110
        # img-it/s at 160 px) and slower in channels_last (85 vs 115),
        # although the bare network is faster in both (docs/benchmarks.md)
        cuda = self.device.type == 'cuda'
        self.amp = amp and cuda
        self.channels_last = channels_last and cuda
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.seed = seed
        self.progress_bar = progress_bar
        self.hooks = [HOOKS.build(h) if isinstance(h, dict) else h
                      for h in hooks]
        self.log_interval = max(int(log_interval), 1)
        self.keep_best = keep_best
        self.resolution_scaled_terms = dict(resolution_scaled_terms or {})
        self.on_batch_done = on_batch_done
        self._t_start, self._steps_run = time.perf_counter(), 0
        self.steps_per_batch = sum(int(s['iters']) for s in self.stages)
        self._max_iters = self.steps_per_batch * len(self.batches)
        self.compile = CompiledParts.resolve(compile, self._max_iters)
        if compile == 'auto' and self.compile:
            runner.logger.info(
                f"synthesis.compile='auto': the teacher runs compiled "
                f'({self._max_iters} pixel-update steps)')
        self.compiled_parts = CompiledParts.build(model, self.compile,
                                                  'synthesis.compile')
        self.dataloader = _Steps(self._max_iters)
        self._iter = 0
        # state the hooks look at
        self.stage: Optional[dict] = None
        self.stage_step = 0
        self.labels: List = []
        self._param: Optional[Tensor] = None
        self.batch_index = -1
        self.done_batches: List[int] = []
        self.skipped_batches: List[int] = []

    @property
    def max_iters(self) -> int:
        return self._max_iters

    @property
    def iter(self) -> int:
        return self._iter

    @property
    def epoch(self) -> int:
        return 0

    @property
    def max_epochs(self) -> int:
        return 1

    def current_images(self) -> Tensor:
        return self._param.detach().clamp(0, 1)

    # -- helpers --------------------------------------------------------------
    @staticmethod
    def _size(res):
        return (res, res) if isinstance(res, int) else tuple(res)

    @staticmethod
    def _image_prior(cfg):
        loss = MODELS.build(cfg) if cfg else None
        return loss if loss is not None and loss.loss_weight else None

    def _pixel_labels(self, labels, h: int, w: int, device=None):
        s = torch.tensor([w, h, w, h], dtype=torch.float)
        return [((b * s).to(device or self.device), c.to(device or
                                                         self.device))
                for b, c in labels]

    def _augment(self, x: Tensor, labels, g: torch.Generator):
        """Cutout, jitter (roll) and flip on the normalised input; pixel
        boxes are moved with the image (clipped to it)."""
        n, _, h, w = x.shape
        if self.jitter:
            dx, dy = torch.randint(-self.jitter, self.jitter + 1, (2, ),
                                   generator=g).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            shift = torch.tensor([dx, dy, dx, dy], dtype=torch.float,
                                 device=x.device)
            labels = [((b + shift).clamp(min=0).minimum(
                torch.tensor([w, h, w, h], dtype=torch.float,
                             device=x.device)), c) for b, c in labels]
        if self.flip and bool(torch.rand(1, generator=g) < 0.5):
            x = x.flip(3)
            labels = [(torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0],
                                    b[:, 3]], 1), c) for b, c in labels]
        if self.cutout:
            prob = self.cutout.get('prob', 0.5)
            lo, hi = self.cutout.get('scale', (0.02, 0.2))
            mask = torch.ones(n, 1, h, w, device=x.device, dtype=x.dtype)
            r = torch.rand(n, 5, generator=g)
            for i in range(n):
                if r[i, 0] >= prob:
                    continue
                area = (lo + (hi - lo) * r[i, 1]) * h * w
                ch = cw = int(math.sqrt(area))
                y0 = int(r[i, 2] * max(h - ch, 1))
                x0 = int(r[i, 3] * max(w - cw, 1))
                mask[i, :, y0:y0 + ch, x0:x0 + cw] = 0
            x = x * mask  # erased region = the preprocessor's mean
        return x, labels

    def compute_losses(self, images: Tensor, labels, g=None,
                       augment: bool = True) -> Dict[str, Tensor]:
        """All loss terms for [0,1] images and normalised labels."""
        if self.prior_loss is not None:
            self.prior_loss.reset()  # drop what other forwards recorded
        x = self.adapter.normalize(images)
        h, w = x.shape[-2:]
        plabels = self._pixel_labels(labels, h, w)
        if augment:
            x, plabels = self._augment(x, plabels, g)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.amp):
            det = self.adapter.loss(x, plabels)
        terms = (self.stage or {}).get('det_terms')
        if terms is not None:  # e.g. without the objectness of negatives
            det = {k: v for k, v in det.items() if k in terms}
        for k, base in self.resolution_scaled_terms.items():
            if k in det:  # YOLOv5's objectness gain scales with image area
                det[k] = det[k] * (h * w / float(base) ** 2)
        out = dict(loss_det=self.det_loss_weight *
                   self.adapter.sum_losses(det).float())
        if self.prior_loss is not None:
            out['loss_prior'] = self.prior_loss()
        if self.tv_loss is not None:
            out['loss_tv'] = self.tv_loss(images)
        if self.l2_loss is not None:
            out['loss_l2'] = self.l2_loss(x)
        out['loss'] = sum(out.values())
        return out

    @torch.no_grad()
    def per_image_losses(self, images: Tensor, labels) -> List[float]:
        res = []
        for i in range(len(images)):
            res.append(float(self.compute_losses(
                images[i:i + 1], labels[i:i + 1], augment=False)['loss']))
        return res

    # -- checks ---------------------------------------------------------------
    FIX_HINTS = dict(
        loss_det='synthesis.det_loss_weight',
        loss_prior='synthesis.prior_loss.loss_weight',
        loss_tv='synthesis.tv_loss.loss_weight',
        loss_l2='synthesis.l2_loss.loss_weight')
    SATURATED = 0.5  # warn above this fraction of pixel values at 0 / 255

    @staticmethod
    def _values(losses: Dict[str, Tensor]) -> Dict[str, float]:
        """All loss terms as floats, with one host sync."""
        names = list(losses)
        vals = torch.stack([torch.as_tensor(losses[n]).detach().float()
                            .reshape(()).to(losses['loss'].device)
                            for n in names]).tolist()
        return dict(zip(names, vals))

    def _check_finite(self, values: Dict[str, float], k: int,
                      stage: Optional[int], step: Optional[int]) -> None:
        """Stop (before anything of batch ``k`` is written) when a loss term
        is NaN / Inf; the message names the batch, the step and the
        term."""
        bad = [n for n, v in values.items() if not math.isfinite(v)]
        if not bad:
            return
        from mmzsq.utils.errors import NonFiniteLossError
        term = next((n for n in bad if n != 'loss'), bad[0])
        where = (f'stage {stage}, step {step}' if step is not None else
                 'final per-image loss')
        hint = self.FIX_HINTS.get(term)
        fix = (f'lower {hint} or synthesis.lr' if hint else
               'lower synthesis.lr or the loss weights')
        if self.amp:
            fix += ', or set synthesis.amp=False'
        raise NonFiniteLossError(
            f'synthesis batch {k} ({where}): {term} is {values[term]}; '
            f'{fix}, then rerun (finished batches are kept, batch {k} was '
            'not written)')

    def _warn_saturated(self, arrs, k: int) -> None:
        """Warn when most pixel values of batch ``k`` are clipped at 0 or
        255 (the usual sign of a far too high learning rate)."""
        import numpy as np
        frac = float(np.mean([np.mean((a == 0) | (a == 255))
                              for a in arrs])) if arrs else 0.
        if frac <= self.SATURATED:
            return
        lrs = sorted({float(s.get('lr', self.lr)) for s in self.stages
                      if int(s['iters'])})
        self.runner.logger.warning(
            f'synthesis batch {k}: {frac:.0%} of the pixel values are '
            f'saturated (0 or 255); lr {", ".join(f"{v:g}" for v in lrs)} '
            'is likely too high: lower synthesis.lr (or the stages\' lr; '
            '1e-2 to 0.2 is usual), delete '
            f'{getattr(self.writer, "set_dir", "the set")} and rerun')

    # -- loop -----------------------------------------------------------------
    def call_hook(self, fn_name: str, **kwargs) -> None:
        """A custom hook point: this loop's hooks, then the Runner's hooks
        that define it (MMEngine calls only hooks that have the method)."""
        for hook in self.hooks:
            if hasattr(hook, fn_name):
                getattr(hook, fn_name)(self.runner, loop=self, **kwargs)
        self.runner.call_hook(fn_name, loop=self, **kwargs)

    def run(self):
        bar = None
        if self.progress_bar and self.runner.rank == 0:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(len(self.batches))
        self._t_start, self._steps_run = time.perf_counter(), 0
        try:
            for k in self.batches:
                if self.writer.batch_done(k):
                    self.skipped_batches.append(k)
                    self._iter += self.steps_per_batch
                else:
                    self.run_batch(k)
                if bar is not None:
                    bar.update()
        finally:
            if self.prior_loss is not None:
                self.prior_loss.remove()
            if self.channels_last:  # the teacher goes on (Stage II) as it was
                self.adapter.model.to(memory_format=torch.contiguous_format)
        if bar is not None:
            print(flush=True)
        return self.adapter.model

    def _init_images(self, n: int, size, g: torch.Generator) -> Tensor:
        h, w = size
        x = self.init_mean + self.init_std * torch.randn(n, 3, h, w,
                                                         generator=g)
        return x.clamp(0, 1).to(self.device)

    def _stage_images(self, images, stage, n, g):
        size = self._size(stage['resolution'])
        if images is None or stage.get('reinit_images', True):
            return self._init_images(n, size, g)
        return F.interpolate(images, size=size, mode='bilinear',
                             align_corners=False).clamp(0, 1)

    def run_batch(self, k: int) -> None:
        self.batch_index = k
        g = torch.Generator().manual_seed(self.seed * 1000003 + k)
        n = min(self.batch_size, self.num_images - k * self.batch_size)
        self.labels = self.label_sampler(n, self.adapter.num_classes, g)
        images = None
        last = len(self.stages) - 1
        for si, stage in enumerate(self.stages):
            self.stage = stage
            images = self._stage_images(images, stage, n, g)
            if int(stage['iters']) == 0:
                self._param = images
                continue
            images = self.run_stage(k, si, stage, images, g,
                                    keep_best=self.keep_best and si == last)
        self.stage, self.stage_step = None, 0
        self._write(k, images.clamp(0, 1))
        self.call_hook('after_synthesis_batch', batch=k)
        if self.on_batch_done is not None:
            self.on_batch_done(k)

    def run_stage(self, k: int, si: int, stage: dict, images: Tensor,
                  g: torch.Generator, keep_best: bool = False) -> Tensor:
        """``stage['iters']`` Adam steps on ``images``; the final images
        (or, with ``keep_best``, those of the lowest-loss step)."""
        iters = int(stage['iters'])
        param = images.clone().requires_grad_(True)
        self._param = param
        lr = stage.get('lr', self.lr)
        opt = torch.optim.Adam([param], lr=lr, betas=self.betas)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=iters, eta_min=self.eta_min * lr)
        best, best_loss = None, math.inf
        for step in range(1, iters + 1):
            self.stage_step = step
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            losses = self._step_losses(param, g)
            losses['loss'].backward()
            # the one host sync of the step: log values + finiteness check
            values = self._values(losses)
            self._check_finite(values, k, si, step)
            if keep_best and values['loss'] < best_loss:
                # the loss was computed on the images before this update
                best, best_loss = param.detach().clone(), values['loss']
            opt.step()
            sched.step()
            self._project(param, step)
            self._after_step(k, si, stage, values, opt, len(param),
                             time.perf_counter() - t0)
        return param.detach() if best is None else best.clamp(0, 1)

    def _step_losses(self, param: Tensor, g) -> Dict[str, Tensor]:
        """:meth:`compute_losses` of a pixel-update step, through the
        teacher's compiled parts when ``compile`` is on."""
        parts = self.compiled_parts
        if parts is None:
            return self.compute_losses(param, self.labels, g)
        # a failed attempt must not move the augmentation draws
        state = g.get_state() if g is not None else None
        return parts.run(
            self.compute_losses, param, self.labels, g,
            before_retry=None if g is None else lambda: g.set_state(state))

    @torch.no_grad()
    def _project(self, param: Tensor, step: int) -> None:
        lpf = self.low_pass_filter
        if lpf is not None and lpf.applies(step, int(self.stage['iters'])):
            param.copy_(lpf(param))
        param.clamp_(0, 1)

    def _after_step(self, k, si, stage, values, opt, n, dt) -> None:
        hub = self.runner.message_hub
        for name, v in values.items():
            hub.update_scalar(f'synthesis/{name}', v)
        hub.update_scalar('synthesis/img_it_per_s', n / max(dt, 1e-9))
        self.call_hook('after_synthesis_iter')
        self._iter += 1
        self._steps_run += 1
        if self.stage_step % self.log_interval == 0 or \
                self.stage_step == int(stage['iters']):
            self._log(k, si, stage, values, opt.param_groups[0]['lr'], n)

    def _log(self, k, si, stage, values, lr, n) -> None:
        elapsed = time.perf_counter() - self._t_start
        left = self.max_iters - self._iter
        eta = elapsed / max(self._steps_run, 1) * left
        terms = '  '.join(f'{name}: {v:.4g}' for name, v in values.items())
        n_boxes = sum(len(b) for b, _ in self.labels)
        boxes = n_boxes / max(len(self.labels), 1)
        self.runner.logger.info(
            f'Stage I batch {k} ({len(self.done_batches) + 1}/'
            f'{len(self.batches)}) stage {si} step {self.stage_step}/'
            f'{stage["iters"]}  {terms}  lr: {lr:.3g}  boxes/img: '
            f'{boxes:.2f}  {n * self._steps_run / max(elapsed, 1e-9):.1f} '
            f'img-it/s  ETA {datetime.timedelta(seconds=int(eta))}')

    def _write(self, k: int, images: Tensor) -> None:
        h, w = images.shape[-2:]
        final = self.per_image_losses(images, self.labels)
        worst = next((v for v in final if not math.isfinite(v)), 0.)
        self._check_finite(dict(loss=worst), k, None, None)
        arrs = (images.float() * 255).round().byte().permute(0, 2, 3, 1)
        arrs = [a.contiguous().cpu().numpy() for a in arrs]
        self._warn_saturated(arrs, k)
        plabels = self._pixel_labels(self.labels, h, w, device='cpu')
        self.writer.write_batch(k, arrs, [(b.numpy(), c.numpy())
                                          for b, c in plabels], final)
        self.done_batches.append(k)
