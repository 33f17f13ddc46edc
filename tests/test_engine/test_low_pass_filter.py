"""Stage I's low-pass switch (train_cfg.synthesis.low_pass_filter): the
filtered spectrum, the schedule inside a real SynthesisLoop, bad values."""
import pytest
import torch

from tests.data.stage_one import teacher_runner, tiny_synthesis


def _energy(x, d0):
    """Spectral energy of ``x`` below and above the cutoff of ``d0``."""
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.fftfreq(w)[None, :]
    high = (fy.pow(2) + fx.pow(2)).sqrt() > d0 * 0.5
    e = torch.fft.fft2(x).abs().pow(2)
    return float(e[..., ~high].sum()), float(e[..., high].sum())


def test_energy_above_the_cutoff_drops():
    from mmzsq.engine.runner.low_pass_filter import LowPassFilter
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    lpf = LowPassFilter(d0=0.25)
    y = lpf(x)
    lo_x, hi_x = _energy(x, 0.25)
    lo_y, hi_y = _energy(y, 0.25)
    # the Gaussian keeps < exp(-1) of the energy above its sigma
    assert hi_y < 0.37 * hi_x
    assert lo_y > 0.37 * lo_x
    assert torch.allclose(y.mean(), x.mean(), atol=1e-5)  # DC kept
    # a lower cutoff removes more
    assert _energy(LowPassFilter(d0=0.1)(x), 0.25)[1] < hi_y


def _loop(tmp_path, low_pass_filter, stages):
    from mmzsq.engine.runner import SynthesisLoop
    from mmzsq.synthesis import DetectorAdapter, SyntheticSet
    syn = tiny_synthesis()
    runner = teacher_runner(syn['teacher'], work_dir=str(tmp_path / 'w'))
    return SynthesisLoop(
        runner, adapter=DetectorAdapter(runner.model),
        writer=SyntheticSet(str(tmp_path / 'set')), batches=[0],
        num_images=2, batch_size=2, stages=stages, prior_loss=None,
        l2_loss=None, cutout=None, amp=False, channels_last=False,
        low_pass_filter=low_pass_filter)


def _changed_steps(loop, stage, images):
    """Steps of one real stage after which the images changed; at lr 0
    Adam leaves them as they are, so only the filter can change them."""
    from mmengine.hooks import Hook

    class Record(Hook):
        def __init__(self):
            self.after = []

        def after_synthesis_iter(self, runner, loop):
            self.after.append(loop.current_images().clone())

    rec = Record()
    loop.hooks = [rec]
    g = torch.Generator().manual_seed(0)
    loop.labels = loop.label_sampler(len(images), loop.adapter.num_classes,
                                     g)
    loop.stage = stage
    out = loop.run_stage(0, 0, stage, images, g)
    prev, changed = images, []
    for step, now in enumerate(rec.after, 1):
        if not torch.equal(now, prev):
            changed.append(step)
        prev = now
    return changed, out


def test_schedule_is_respected_in_the_loop(tmp_path):
    stage = dict(resolution=64, iters=10, lr=0.)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    # off (the default): nothing but Adam touches the images
    off = _loop(tmp_path, None, [stage])
    assert _changed_steps(off, stage, x)[0] == []
    # every 2nd step in (0.2 N, 0.6 N] = steps 3..6
    lpf = dict(d0=0.3, interval=2, start=0.2, stop=0.6)
    loop = _loop(tmp_path, lpf, [stage])
    changed, out = _changed_steps(loop, stage, x)
    assert changed == [4, 6]
    want = x
    for _ in changed:
        want = loop.low_pass_filter(want).clamp(0, 1)
    assert torch.allclose(out, want, atol=1e-6)
    assert _energy(out, 0.3)[1] < 0.37 ** 2 * _energy(x, 0.3)[1]
    # the window is a fraction of each stage: steps 1..2 of 4
    short = dict(stage, iters=4)
    loop = _loop(tmp_path, dict(d0=0.3, start=0., stop=0.5), [short])
    assert _changed_steps(loop, short, x)[0] == [1, 2]
    # the former form, dict(d0, interval): every interval-th step
    loop = _loop(tmp_path, dict(d0=0.3, interval=3), [stage])
    assert _changed_steps(loop, stage, x)[0] == [3, 6, 9]


@pytest.mark.parametrize('cfg,match', [
    (dict(d0=0), r'd0=0: give the cutoff .* > 0'),
    (dict(d0='high'), 'd0=.high.'),
    (dict(interval=0), r'interval=0: give a whole number of steps >= 1'),
    (dict(interval=2.5), 'interval=2.5'),
    (dict(start=0.5, stop=0.5), r'0 <= start < stop <= 1'),
    (dict(stop=1.5), r'stop=1.5 is no window'),
    (dict(cutoff=0.5), r"unknown keys \['cutoff'\]; use d0, interval"),
    (0.5, 'give a dict'),
])
def test_bad_values_are_one_line_config_errors(cfg, match):
    from mmzsq.engine.runner.low_pass_filter import LowPassFilter
    from mmzsq.utils.errors import ConfigError
    with pytest.raises(ConfigError, match=match) as e:
        LowPassFilter.build(cfg)
    assert '\n' not in str(e.value)
    assert 'train_cfg.synthesis.low_pass_filter' in str(e.value)
