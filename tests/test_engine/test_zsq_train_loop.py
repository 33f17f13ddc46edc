"""ZSQTrainLoop: Stage I and Stage II in one training Runner, on the
algorithm's own teacher (tiny random YOLOv5, no ../shared needed)."""
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from tests.conftest import ROOT
from tests.data.stage_one import hand_set, tiny_yolo


PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='mmdet.Resize', scale=(64, 64), keep_ratio=False),
    dict(type='mmdet.PackDetInputs')]


def zsq_cfg(work_dir, set_dir, seed=0, **synthesis):
    syn = dict(num_images=4, batch_size=2, seed=0, log_interval=1,
               stages=[dict(resolution=64, iters=2, label_sampling=True),
                       dict(resolution=64, iters=1)],
               als=dict(type='mmzsq.AdaptiveLabelSamplingHook', interval=1,
                        warmup=1, early_exit=2),
               amp=False, channels_last=False, lr=0.1)
    syn.update(synthesis)
    return Config(dict(
        default_scope='mmyolo', work_dir=str(work_dir),
        custom_imports=dict(imports=['mmzsq'], allow_failed_imports=False),
        model=dict(type='mmzsq.QuantDistillAlgorithm',
                   architecture=tiny_yolo(),
                   quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=4,
                                  a_bits=8),
                   loss_weights=dict(det=0.04, kd=0.1, feat=1.0)),
        train_dataloader=dict(
            batch_size=2, num_workers=0, collate_fn=dict(
                type='yolov5_collate'),
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(type='YOLOv5CocoDataset', data_root=str(set_dir),
                         ann_file='annotations.json',
                         data_prefix=dict(img='images/'),
                         filter_cfg=dict(filter_empty_gt=False),
                         pipeline=PIPELINE)),
        train_cfg=dict(type='mmzsq.ZSQTrainLoop', max_iters=2,
                       val_interval=10, synthesis=syn),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-4)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=seed)))


def build(cfg):
    from mmzsq.utils.cli import build_runner
    return build_runner(cfg)


def test_stage_one_then_two_in_one_runner(tmp_path):
    from mmzsq.synthesis import SyntheticSet, teacher_hash
    set_dir = str(tmp_path / 'set')
    runner = build(zsq_cfg(tmp_path / 'work', set_dir))
    runner.train()
    algo = runner.model
    # Stage I used the algorithm's own teacher (its weights' hash)
    meta = json.load(open(osp.join(set_dir, 'meta.json')))
    assert meta['teacher_hash'] == teacher_hash(algo.teacher)
    assert runner.train_loop.synthesis_stats['done_batches'] == [0, 1]
    coco = SyntheticSet(set_dir).read_index()
    assert len(coco['images']) == 4
    # the plain mmyolo dataset reads the set, with the set's classes
    ds = runner.train_dataloader.dataset
    assert type(ds).__name__ == 'YOLOv5CocoDataset' and len(ds) == 4
    assert ds.metainfo['classes'] == tuple(SyntheticSet(set_dir).classes())
    # then Stage II trained: quantizers initialised, a checkpoint with the
    # teacher in it
    assert runner.iter == 2
    ckpt = torch.load(osp.join(runner.work_dir, 'iter_2.pth'),
                      map_location='cpu', weights_only=False)
    assert any(k.startswith('teacher.') for k in ckpt['state_dict'])
    # ALS ran on the set's labels (its hook point), and the loop logged
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert re.search(r'Stage I batch 1 \(2/2\) stage 0 step 2/2 .*'
                     r'img-it/s  ETA', log), log[-3000:]
    assert 'Iter(train) [2/2]' in log

    # a second Runner reuses the complete set: no synthesis
    runner2 = build(zsq_cfg(tmp_path / 'work2', set_dir))
    loop = runner2.build_train_loop(runner2.cfg.train_cfg)
    assert loop.synthesis_stats is None and len(loop.dataloader.dataset) == 4


def test_set_of_another_teacher_or_settings_refused(tmp_path):
    from mmzsq.utils.errors import SetMismatchError
    set_dir = str(tmp_path / 'set')
    runner = build(zsq_cfg(tmp_path / 'w', set_dir, num_images=2))
    runner.build_train_loop(runner.cfg.train_cfg)
    # other random weights (seed) = another teacher
    other = build(zsq_cfg(tmp_path / 'w2', set_dir, seed=1, num_images=2))
    with pytest.raises(SetMismatchError, match='teacher_hash'):
        other.build_train_loop(other.cfg.train_cfg)
    same = build(zsq_cfg(tmp_path / 'w3', set_dir, num_images=2, seed=0))
    same.cfg.train_cfg.synthesis.batch_size = 1
    with pytest.raises(SetMismatchError, match='batch_size'):
        same.build_train_loop(same.cfg.train_cfg)


def test_set_without_meta_is_checked_by_its_index(tmp_path):
    """A set without meta.json (copied, hand-made): its categories give the
    class count, refused for an 80-class teacher before training reads
    it."""
    from mmzsq.utils.errors import SetMismatchError
    three = str(tmp_path / 'three')
    hand_set(three)
    runner = build(zsq_cfg(tmp_path / 'w', three, num_images=3))
    with pytest.raises(SetMismatchError,
                       match=r'made for another model: it has 3 classes, '
                       r'the model 80; point data_root'):
        runner.build_train_loop(runner.cfg.train_cfg)


@pytest.mark.parametrize('change, match', [
    (dict(teacher=dict(type='YOLODetector')), r"unknown keys \['teacher'\]"),
    (dict(teacher_checkpoint='x.pth'), 'set model.teacher_checkpoint'),
    (dict(stages=None), r"lacks \['stages'\]"),
])
def test_bad_synthesis_settings_name_the_fix(tmp_path, change, match):
    from mmzsq.utils.errors import ConfigError
    runner = build(zsq_cfg(tmp_path / 'w', str(tmp_path / 'set'), **change))
    with pytest.raises(ConfigError, match=match):
        runner.build_train_loop(runner.cfg.train_cfg)


def test_dataset_must_read_the_set_layout(tmp_path):
    from mmzsq.utils.errors import ConfigError
    cfg = zsq_cfg(tmp_path / 'w', str(tmp_path / 'set'))
    cfg.train_dataloader.dataset.ann_file = 'instances.json'
    runner = build(cfg)
    with pytest.raises(ConfigError, match="set ann_file='annotations.json'"):
        runner.build_train_loop(runner.cfg.train_cfg)


def test_no_runner_or_private_state_in_the_library():
    """One Runner per run: the package builds none (but the tools' one,
    in ``mmzsq.utils.cli.build_runner``), and writes no mmengine private
    state."""
    bad = []
    for folder, _, files in __import__('os').walk(osp.join(ROOT, 'mmzsq')):
        for f in files:
            path = osp.join(folder, f)
            if not f.endswith('.py') or path.endswith('utils/cli.py'):
                continue
            src = open(path).read()
            for pat in (r'\bRunner\(', r'Runner\.from_cfg', r'_instance_dict',
                        r'\._train_loop\s*=', r'_children\['):
                if re.search(pat, src):
                    bad.append((f, pat))
    assert not bad, bad


def test_plain_detector_teacher_loads_its_checkpoint_strictly(tmp_path):
    """Stage I alone (a float detector as the Runner's model): the loop
    loads synthesis.teacher_checkpoint into it, and refuses one of another
    size before any synthesis step."""
    from mmengine.runner import save_checkpoint

    from mmzsq.synthesis import teacher_hash
    from mmzsq.utils.errors import CheckpointError

    def plain_cfg(name, ckpt):
        cfg = zsq_cfg(tmp_path / f'w_{name}', str(tmp_path / name),
                      num_images=2, teacher_checkpoint=ckpt, als=None)
        cfg.model = tiny_yolo()
        return cfg

    donor = build(plain_cfg('donor', None)).model
    torch.nn.init.normal_(donor.backbone.stem.conv.weight)
    good = str(tmp_path / 'good.pth')
    save_checkpoint(donor.state_dict(), good)
    runner = build(plain_cfg('good', good))
    runner.build_train_loop(runner.cfg.train_cfg)
    meta = json.load(open(tmp_path / 'good' / 'meta.json'))
    assert meta['teacher_hash'] == teacher_hash(donor)
    assert meta['teacher_checkpoint'] == good

    small = zsq_cfg(tmp_path / 'x', str(tmp_path / 'x')).model.architecture
    small.backbone.widen_factor = 0.0625
    from mmengine.registry import init_default_scope

    from mmzsq.registry import MODELS
    init_default_scope('mmyolo')
    bad = str(tmp_path / 'small.pth')
    save_checkpoint(MODELS.build(small).state_dict(), bad)
    runner = build(plain_cfg('bad', bad))
    with pytest.raises(CheckpointError) as e:
        runner.build_train_loop(runner.cfg.train_cfg)
    msg = str(e.value)
    assert '\n' not in msg and 'the Stage I teacher (the model)' in msg
    assert 'set train_cfg.synthesis.teacher_checkpoint' in msg
    assert not osp.exists(tmp_path / 'bad' / 'images')


def test_mmengine_compile_key_compiles_the_student_not_train_step(
        tmp_path):
    """``compile=...`` (MMEngine's key, which would compile train_step and
    the optimizer with it) becomes the algorithm's ``compile``: the first
    step eager (initialising the quantizers), the next ones through the
    student's compiled parts; train_step itself stays a plain method."""
    from torch._dynamo.utils import counters
    cfg = zsq_cfg(tmp_path / 'w', tmp_path / 'set')
    cfg.train_cfg.synthesis = None
    hand_set(tmp_path / 'set', classes=[str(i) for i in range(80)], n=4)
    cfg.train_cfg.max_iters = 3
    cfg.compile = dict(backend='aot_eager')
    runner = build(cfg)
    torch._dynamo.reset()
    counters.clear()
    runner.train()
    assert runner.iter == 3 and runner.cfg.compile is False
    parts = runner.model.compiled_parts
    assert parts.enabled and parts.options == dict(backend='aot_eager')
    assert all(fn is not None for fn in parts._fns)
    assert counters['stats']['unique_graphs'] >= len(parts.modules)
    assert not hasattr(runner.model.train_step, '_torchdynamo_orig_callable')


def test_auto_compile_follows_the_run_length(tmp_path):
    """``model.compile='auto'`` (the YOLOv5 configs, both stages): the
    loop compiles runs of ``AUTO_MIN_STEPS`` iterations or more (the
    shipped 2000), shorter ones (tests, the demo) stay eager."""
    from mmzsq.models.utils.compiled_parts import (AUTO_MIN_STEPS,
                                                   CompiledParts)
    assert CompiledParts.resolve('auto', AUTO_MIN_STEPS - 1) is False
    assert CompiledParts.resolve('auto', AUTO_MIN_STEPS) is True
    assert CompiledParts.resolve(dict(backend='x'), 1) == dict(backend='x')
    hand_set(tmp_path / 'set', classes=[str(i) for i in range(80)], n=4)
    for iters, want in ((3, False), (AUTO_MIN_STEPS, True)):
        cfg = zsq_cfg(tmp_path / f'w{iters}', tmp_path / 'set')
        cfg.train_cfg.synthesis = None
        cfg.train_cfg.max_iters = iters
        cfg.model.compile = 'auto'
        runner = build(cfg)
        assert runner.model.compiled_parts is None  # undecided until here
        runner.build_train_loop(runner.cfg.train_cfg)
        assert (runner.model.compiled_parts is not None) is want, iters
        assert runner.model.compile_option == 'auto'
    shipped = Config.fromfile(osp.join(ROOT, 'configs/zsq/yolov5_n_w4a8.py'))
    assert shipped.model.compile == 'auto'
    assert shipped.train_cfg.synthesis.compile == 'auto'
    assert shipped.train_cfg.max_iters >= AUTO_MIN_STEPS


def test_auto_num_workers_is_none_without_cuda(tmp_path):
    """``num_workers='auto'`` (the shipped configs): no worker process on a
    CPU-only machine, 2 with CUDA; the set read through the shipped
    ``mmzsq.CachedLoadImageFromFile``."""
    from mmzsq.engine.runner.zsq_train_loop import (AUTO_WORKERS_CUDA,
                                                    resolve_num_workers)
    cfg = zsq_cfg(tmp_path / 'work', str(tmp_path / 'set'))
    cfg.train_dataloader.update(num_workers='auto', persistent_workers=True)
    cfg.train_dataloader.dataset.pipeline[0] = dict(
        type='mmzsq.CachedLoadImageFromFile')
    runner = build(cfg)
    runner.train()
    want = AUTO_WORKERS_CUDA if torch.cuda.is_available() else 0
    assert runner.train_dataloader.num_workers == want
    assert runner.train_dataloader.persistent_workers == bool(want)
    load = runner.train_dataloader.dataset.pipeline.transforms[0]
    assert len(load._cache) == 4  # every image of the set decoded once
    assert cfg.train_dataloader.num_workers == 'auto'  # config untouched
    assert resolve_num_workers(dict(num_workers=3)) == dict(num_workers=3)
