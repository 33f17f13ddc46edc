"""SynthesisLoop through :func:`mmzsq.synthesis.synthesize_set`: the
schedule, atomic batches and bitwise resume, refusals, rank sharding, NaN
stop, saturation warning, augmentation, hook points."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, needs_yolov5n
from tests.data.stage_one import (generate_synthetic_set, tiny_synthesis,
                                  yolov5n_model)


def _synthesis(ckpt, **kw):
    cfg = dict(
        teacher=yolov5n_model(), teacher_checkpoint=ckpt,
        num_images=4, batch_size=2, seed=0,
        stages=[dict(resolution=64, iters=3, label_sampling=True),
                dict(resolution=96, iters=2, reinit_images=True)],
        als=dict(type='mmzsq.AdaptiveLabelSamplingHook', interval=1,
                 warmup=1, early_exit=3, conf_thr=0.01),
        det_loss_weight=0.5,
        prior_loss=dict(type='mmzsq.BNStatisticsLoss', loss_weight=0.01),
        l2_loss=dict(type='mmzsq.ImageL2Loss', loss_weight=5e-4),
        lr=0.1, log_interval=1)
    cfg.update(kw)
    return cfg


@needs_yolov5n
def test_generate_resume_and_refusal(yolov5n_mmyolo_ckpt, tmp_path,
                                     monkeypatch):
    from mmzsq.synthesis import SetMismatchError, SyntheticSet
    set_dir = str(tmp_path / 'set')
    # a three-stage schedule: labels at 64 px, images refined after a resize
    # to 96 px, then fresh images at 96 px
    syn = _synthesis(yolov5n_mmyolo_ckpt, stages=[
        dict(resolution=64, iters=3, label_sampling=True),
        dict(resolution=96, iters=1, reinit_images=False),
        dict(resolution=96, iters=1, reinit_images=True)])
    orig = SyntheticSet.write_batch
    calls = []

    def crash_on_second(self, k, *a, **kw):
        calls.append(k)
        if len(calls) == 2:
            # half-written debris of the interrupted batch
            open(osp.join(self.img_dir, f'{k:05d}_000.png.tmp1'),
                 'wb').write(b'x')
            raise KeyboardInterrupt('simulated crash')
        return orig(self, k, *a, **kw)

    monkeypatch.setattr(SyntheticSet, 'write_batch', crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_set(syn, set_dir)
    monkeypatch.setattr(SyntheticSet, 'write_batch', orig)
    assert SyntheticSet(set_dir).batch_done(0)
    assert not SyntheticSet(set_dir).batch_done(1)
    assert not osp.exists(osp.join(set_dir, 'annotations.json'))
    before = open(osp.join(set_dir, 'images', '00000_000.png'), 'rb').read()

    out = generate_synthetic_set(syn, set_dir)
    assert out['stats']['skipped_batches'] == [0]
    assert out['stats']['done_batches'] == [1]
    assert open(osp.join(set_dir, 'images', '00000_000.png'),
                'rb').read() == before
    coco = json.load(open(osp.join(set_dir, 'annotations.json')))
    assert len(coco['images']) == 4 and len(coco['annotations']) >= 4
    assert [c['id'] for c in coco['categories']] == list(range(80))
    assert coco['categories'][0]['name'] == 'person'
    info = coco['info']
    assert info['teacher_hash'] and info['seed'] == 0 and info['stages']
    assert len(info['per_image_final_loss']) == 4
    im = coco['images'][0]
    assert (im['width'], im['height']) == (96, 96)
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        assert 0 <= x and x + w <= 96.01 and w > 0 and a['iscrowd'] == 0
    import cv2
    assert cv2.imread(osp.join(set_dir, 'images', im['file_name'])).shape \
        == (96, 96, 3)

    # a finished set is reused as is
    out = generate_synthetic_set(syn, set_dir)
    assert out['stats']['skipped_batches'] == [0, 1]
    # mismatched settings are refused, naming the fix
    for bad in (dict(seed=1), dict(num_images=6, stages=syn['stages']),
                dict(stages=[dict(resolution=64, iters=1)])):
        with pytest.raises(SetMismatchError, match='delete'):
            generate_synthetic_set(_synthesis(yolov5n_mmyolo_ckpt, **bad),
                                   set_dir)
    with pytest.raises(ValueError, match='multiple of 32'):
        generate_synthetic_set(_synthesis(yolov5n_mmyolo_ckpt, stages=[
            dict(resolution=80, iters=1)]), str(tmp_path / 'other'))
    with pytest.raises(SetMismatchError, match='teacher_hash'):
        generate_synthetic_set(_synthesis(None), set_dir)
    # a corrupt index is refused, naming the fix
    with open(osp.join(set_dir, 'annotations.json'), 'w') as f:
        f.write('{"images": [')
    with pytest.raises(SetMismatchError, match='delete it and rerun'):
        SyntheticSet(set_dir).is_complete(4)


def _dist_worker(rank, world, init_file, ckpt, set_dir, out_dir):
    import sys
    sys.path.insert(0, ROOT)
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=world)
    from tests.data.stage_one import generate_synthetic_set
    syn = _synthesis(ckpt, num_images=4, batch_size=1,
                     stages=[dict(resolution=64, iters=1)])
    out = generate_synthetic_set(syn, set_dir)
    with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(dict(done=out['stats']['done_batches'],
                       n=len(out['coco']['images'])), f)
    # what the tools do at the end: without barrier + destroy a rank could
    # tear down its gloo group while the peer still had messages in flight
    # and abort at exit (~1 run in 4, see mmzsq.utils.cli.finish_distributed)
    from mmzsq.utils.cli import finish_distributed
    finish_distributed()
    assert not dist.is_initialized()


@needs_yolov5n
def test_two_rank_gloo_sharding(yolov5n_mmyolo_ckpt, tmp_path):
    import torch.multiprocessing as mp
    set_dir = str(tmp_path / 'set')
    mp.start_processes(_dist_worker, args=(2, str(tmp_path / 'init'),
                                           yolov5n_mmyolo_ckpt, set_dir,
                                           str(tmp_path)),
                       nprocs=2, join=True, start_method='spawn')
    r0 = json.load(open(tmp_path / 'rank0.json'))
    r1 = json.load(open(tmp_path / 'rank1.json'))
    assert r0['done'] == [0, 2] and r1['done'] == [1, 3]  # disjoint shards
    assert r0['n'] == r1['n'] == 4  # every rank sees the merged index
    coco = json.load(open(osp.join(set_dir, 'annotations.json')))
    names = [im['file_name'] for im in coco['images']]
    assert len(set(names)) == 4 and coco['info']['world_size'] == 2


def test_augment_moves_boxes_with_the_image():
    from types import SimpleNamespace

    from mmzsq.engine.runner import SynthesisLoop
    x = torch.zeros(1, 3, 64, 64)
    x[..., 20:40, 10:30] = 1  # object at x 10..30, y 20..40
    labels = [(torch.tensor([[10., 20., 30., 40.]]), torch.tensor([1]))]
    g = torch.Generator().manual_seed(0)
    for jitter, flip in ((0, True), (5, False), (5, True)):
        cfg = SimpleNamespace(jitter=jitter, flip=flip, cutout=None)
        for _ in range(10):
            y, out = SynthesisLoop._augment(cfg, x, labels, g)
            x1, y1, x2, y2 = out[0][0][0].round().long().tolist()
            assert (x2 - x1, y2 - y1) == (20, 20)
            assert y[0, 0, y1:y2, x1:x2].min() == 1  # box still on object
            assert y.sum() == x.sum()
    cfg = SimpleNamespace(jitter=0, flip=False,
                          cutout=dict(prob=1.0, scale=(0.1, 0.1)))
    y, _ = SynthesisLoop._augment(cfg, torch.ones(2, 3, 64, 64), labels * 2,
                                  g)
    erased = (y[:, 0] == 0).flatten(1).sum(1)
    assert erased.tolist() == [400, 400]  # int(sqrt(0.1 * 64 * 64))**2


def test_low_pass_keeps_mean_and_smooths():
    from mmzsq.engine.runner import low_pass
    from mmzsq.models.losses import TotalVariationLoss
    x = torch.rand(1, 3, 32, 32)
    y = low_pass(x, 0.2)
    assert torch.allclose(y.mean(), x.mean(), atol=1e-4)
    assert TotalVariationLoss()(y) < 0.5 * TotalVariationLoss()(x)


def test_nonfinite_loss_stops_batch_unwritten(tmp_path):
    from mmzsq.utils.errors import NonFiniteLossError
    set_dir = str(tmp_path / 'set')
    syn = tiny_synthesis(prior_loss=dict(type='mmzsq.BNStatisticsLoss',
                                         loss_weight=1e40))
    with pytest.raises(NonFiniteLossError) as e:
        generate_synthetic_set(syn, set_dir)
    msg = str(e.value)
    assert '\n' not in msg
    for part in ('batch 0', 'step 1', 'loss_prior is inf',
                 'synthesis.prior_loss.loss_weight', 'rerun'):
        assert part in msg, msg
    assert not glob.glob(osp.join(set_dir, 'images', '*'))
    assert not glob.glob(osp.join(set_dir, 'batches', '*'))
    assert not osp.exists(osp.join(set_dir, 'annotations.json'))


def test_nonfinite_check_names_the_term():
    from types import SimpleNamespace

    import torch

    from mmzsq.engine.runner import SynthesisLoop
    from mmzsq.utils.errors import NonFiniteLossError
    loop = SimpleNamespace(amp=True, FIX_HINTS=SynthesisLoop.FIX_HINTS)
    values = SynthesisLoop._values(dict(loss_det=torch.tensor(1.),
                                        loss_l2=torch.tensor(float('nan')),
                                        loss=torch.tensor(float('nan'))))
    assert values['loss_det'] == 1.
    with pytest.raises(NonFiniteLossError,
                       match=r'batch 7 \(stage 1, step 3\): loss_l2 is nan; '
                       r'lower synthesis.l2_loss.loss_weight .*amp=False'):
        SynthesisLoop._check_finite(loop, values, 7, 1, 3)
    SynthesisLoop._check_finite(loop, dict(loss=2.), 7, 1, 3)  # finite


def test_saturation_warning_huge_lr(tmp_path):
    import cv2

    set_dir = str(tmp_path / 'set')
    out = generate_synthetic_set(tiny_synthesis(lr=1e6), set_dir,
                                 log_level='INFO')
    coco = out['coco']
    img = cv2.imread(osp.join(set_dir, 'images',
                              coco['images'][0]['file_name']))
    assert np.mean((img == 0) | (img == 255)) > 0.9  # written, saturated
    logs = ''.join(open(p).read() for p in glob.glob(
        osp.join(set_dir, 'logs', '**', '*.log'), recursive=True))
    lines = [ln for ln in logs.splitlines() if 'saturated' in ln]
    assert len(lines) == 1, logs[-2000:]
    assert 'WARNING' in lines[0] and 'synthesis batch 0' in lines[0] and \
        'lr 1e+06 is likely too high: lower synthesis.lr' in lines[0]


def test_keep_best_writes_the_lowest_loss_step(tmp_path):
    """keep_best: the written images are the snapshot the lowest training
    loss of the last stage was computed on, not the last step's."""
    import cv2
    from mmengine.hooks import Hook

    from tests.data.stage_one import teacher_runner

    class Record(Hook):
        def __init__(self):
            self.loss, self.after = [], []

        def after_synthesis_iter(self, runner, loop):
            # this step's loss was computed on the images before its update
            self.loss.append(runner.message_hub.get_scalar(
                'synthesis/loss').current())
            self.after.append(loop.current_images().clone())

    syn = tiny_synthesis(stages=[dict(resolution=64, iters=6)], lr=0.5,
                         keep_best=True)
    runner = teacher_runner(syn['teacher'], work_dir=str(tmp_path / 'w'))
    rec = Record()
    runner.register_hook(rec)
    set_dir = str(tmp_path / 'set')
    generate_synthetic_set(syn, set_dir, runner=runner)
    best = int(np.argmin(rec.loss))
    assert best >= 1, rec.loss  # (step 1 would be the initial noise)
    snap = rec.after[best - 1]
    for i in range(2):
        png = cv2.imread(osp.join(set_dir, 'images', f'00000_{i:03d}.png'))
        want = (snap[i].float() * 255).round().byte().permute(1, 2, 0)
        assert np.abs(png.astype(int) - want.numpy().astype(int)).max() <= 1
        last = (rec.after[-1][i].float() * 255).round().byte().permute(
            1, 2, 0).numpy()
        assert not np.array_equal(png, last)


def test_hook_points_reach_loop_and_runner_hooks(tmp_path):
    """ALS and any Runner hook defining them get after_synthesis_iter /
    after_synthesis_batch with the loop; no training hook point runs."""
    from mmengine.hooks import Hook

    from tests.data.stage_one import teacher_runner

    class Probe(Hook):
        def __init__(self):
            self.iters, self.batches, self.train = 0, [], 0

        def after_synthesis_iter(self, runner, loop):
            self.iters += 1
            assert loop.stage is not None and loop.labels

        def after_synthesis_batch(self, runner, loop, batch):
            self.batches.append(batch)

        def after_train_iter(self, *a, **kw):
            self.train += 1

    syn = tiny_synthesis(num_images=4,
                         stages=[dict(resolution=64, iters=3)])
    runner = teacher_runner(syn['teacher'], work_dir=str(tmp_path / 'w'))
    probe = Probe()
    runner.register_hook(probe)
    generate_synthetic_set(syn, str(tmp_path / 'set'), runner=runner)
    assert (probe.iters, probe.batches, probe.train) == (6, [0, 1], 0)


def test_stage_det_terms_keep_only_those_terms(tmp_path):
    """A stage's det_terms: L_detect sums only the named terms (e.g. YOLOv5
    without its objectness)."""
    from mmzsq.engine.runner import SynthesisLoop
    from mmzsq.synthesis import DetectorAdapter, SyntheticSet
    from tests.data.stage_one import teacher_runner
    syn = tiny_synthesis()
    runner = teacher_runner(syn['teacher'], work_dir=str(tmp_path / 'w'))
    loop = SynthesisLoop(
        runner, adapter=DetectorAdapter(runner.model),
        writer=SyntheticSet(str(tmp_path / 'set')), batches=[0],
        num_images=2, batch_size=2, stages=[dict(resolution=64, iters=1)],
        prior_loss=None, l2_loss=None, amp=False, channels_last=False)
    g = torch.Generator().manual_seed(0)
    labels = loop.label_sampler(2, loop.adapter.num_classes, g)
    x = torch.rand(2, 3, 64, 64)
    terms = loop.adapter.loss(loop.adapter.normalize(x),
                              loop._pixel_labels(labels, 64, 64))
    assert {'loss_cls', 'loss_obj', 'loss_bbox'} <= set(terms)
    full = loop.compute_losses(x, labels, augment=False)['loss_det']
    loop.stage = dict(resolution=64, iters=1, det_terms=['loss_cls'])
    only = loop.compute_losses(x, labels, augment=False)['loss_det']
    assert torch.allclose(only, loop.det_loss_weight *
                          terms['loss_cls'].sum().float())
    assert 0 < only < full


def test_resolution_scaled_terms_scale_with_stage_area(tmp_path):
    """resolution_scaled_terms=dict(loss_obj=640): YOLOv5's objectness is
    weighed (h*w)/640**2 at a stage of h x w px (1/16 at 160 px), the other
    terms are untouched."""
    from mmzsq.engine.runner import SynthesisLoop
    from mmzsq.synthesis import DetectorAdapter, SyntheticSet
    from tests.data.stage_one import teacher_runner
    syn = tiny_synthesis()
    runner = teacher_runner(syn['teacher'], work_dir=str(tmp_path / 'w'))

    def loop_of(**kw):
        return SynthesisLoop(
            runner, adapter=DetectorAdapter(runner.model),
            writer=SyntheticSet(str(tmp_path / 'set')), batches=[0],
            num_images=2, batch_size=2,
            stages=[dict(resolution=64, iters=1)], prior_loss=None,
            l2_loss=None, amp=False, channels_last=False, **kw)

    plain, scaled = loop_of(), loop_of(resolution_scaled_terms=dict(
        loss_obj=128))
    g = torch.Generator().manual_seed(0)
    labels = plain.label_sampler(2, plain.adapter.num_classes, g)
    x = torch.rand(2, 3, 64, 64)
    terms = plain.adapter.loss(plain.adapter.normalize(x),
                               plain._pixel_labels(labels, 64, 64))
    full = plain.compute_losses(x, labels, augment=False)['loss_det']
    got = scaled.compute_losses(x, labels, augment=False)['loss_det']
    obj = terms['loss_obj'].sum().float()
    assert float(obj) > 0
    assert torch.allclose(got, full - plain.det_loss_weight * obj * 0.75,
                          rtol=1e-4)


def test_cpu_stays_fp32_and_contiguous(tmp_path):
    """amp / channels_last apply on CUDA only (on CPU both made the loop
    slower, measured); the teacher leaves Stage I in its own memory
    format (Stage II uses it)."""
    from mmzsq.engine.runner import SynthesisLoop
    from mmzsq.synthesis import DetectorAdapter, SyntheticSet
    from tests.data.stage_one import teacher_runner
    syn = tiny_synthesis()
    runner = teacher_runner(syn['teacher'], work_dir=str(tmp_path / 'w'))
    model = runner.model
    conv = next(m for m in model.modules()
                if isinstance(m, torch.nn.Conv2d))
    loop = SynthesisLoop(
        runner, adapter=DetectorAdapter(model),
        writer=SyntheticSet(str(tmp_path / 'set')), batches=[0],
        num_images=2, batch_size=2, stages=[dict(resolution=64, iters=2)],
        amp=True, channels_last=True)
    assert not loop.amp and not loop.channels_last
    loop.run()
    assert conv.weight.is_contiguous()
    assert SyntheticSet(str(tmp_path / 'set')).batch_done(0)


def test_image_priors_weighed_zero_are_not_computed():
    from mmzsq.engine.runner import SynthesisLoop
    build = SynthesisLoop._image_prior
    assert build(None) is None
    assert build(dict(type='mmzsq.ImageL2Loss', loss_weight=0.0)) is None
    assert build(dict(type='mmzsq.TotalVariationLoss', loss_weight=0)) is None
    kept = build(dict(type='mmzsq.ImageL2Loss', loss_weight=5e-5))
    assert kept is not None and kept.loss_weight == 5e-5


def test_compile_runs_the_teacher_as_graphs_with_the_same_steps(tmp_path):
    """``compile``: the pixel-update steps run the teacher's backbone, neck
    and head module as compiled graphs (BN-statistics hooks traced in, no
    graph break) with the eager losses and images.  ``aot_eager``: dynamo
    + AOTAutograd without inductor's C++ build."""
    import cv2
    from mmengine.hooks import Hook
    from torch._dynamo.utils import counters

    from tests.data.stage_one import teacher_runner

    class Record(Hook):
        def __init__(self):
            self.loss = []

        def after_synthesis_iter(self, runner, loop):
            self.loss.append(runner.message_hub.get_scalar(
                'synthesis/loss').current())

    runs = {}
    # 'auto' (the YOLOv5 configs): eager in a run this short
    for name, compile in (('eager', False), ('auto', 'auto'),
                          ('compiled', dict(backend='aot_eager'))):
        syn = tiny_synthesis(stages=[dict(resolution=64, iters=3)],
                             tv_loss=dict(type='mmzsq.TotalVariationLoss',
                                          loss_weight=1e-3),
                             compile=compile)
        runner = teacher_runner(syn['teacher'],
                                work_dir=str(tmp_path / f'w_{name}'))
        rec = Record()
        runner.register_hook(rec)
        torch._dynamo.reset()
        counters.clear()
        set_dir = str(tmp_path / name)
        generate_synthetic_set(syn, set_dir, runner=runner)
        runs[name] = rec.loss, [
            cv2.imread(osp.join(set_dir, 'images', f'00000_{i:03d}.png'))
            for i in range(2)]
        if name == 'compiled':
            assert counters['stats']['unique_graphs'] == 3
            assert not counters['graph_break']
        else:
            assert not counters['stats']['unique_graphs']
    assert runs['auto'][0] == runs['eager'][0]
    (want, want_img), (got, got_img) = runs['eager'], runs['compiled']
    assert got == pytest.approx(want, rel=1e-5)
    for a, b in zip(got_img, want_img):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
