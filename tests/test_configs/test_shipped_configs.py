"""Every shipped config, as shipped.

Only what a toy run needs is overridden (:func:`toy_overrides`): random
weights, a 2-image Stage I at 64 px, a 64 px training/eval resolution, 2
training iterations, the data roots (a tiny generated COCO folder) and no
dataloader worker processes.
Optimizer, ``paramwise_cfg``, schedulers, hooks and loops stay as shipped.

* every config under ``configs/{zsq,synthesis,yolo11}/`` builds its full
  Runner: model, optimizer, schedulers, hooks and loops;
* one config per family x method goes through ``tools/train.py`` (2
  iterations) and then ``tools/test.py`` on the saved checkpoint.
"""
import glob
import importlib.util
import json
import pickle
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmzsq.utils.cli import build_runner, load_config
from tests.conftest import ROOT
from tests.data.tiny_coco import make_tiny_coco

CONFIGS = sorted(
    p for d in ('zsq', 'synthesis', 'yolo11')
    for p in glob.glob(osp.join(ROOT, 'configs', d, '*.py')))
RES = 64
ITERS = 2


@pytest.fixture(scope='module')
def tiny_coco(tmp_path_factory):
    """``$MMZSQ_COCO_ROOT`` / ``$MMZSQ_COCO_TRAIN_ROOT`` -> a generated
    folder for this module's tests."""
    root = make_tiny_coco(tmp_path_factory.mktemp('tiny_coco'))
    saved = {k: os.environ.get(k)
             for k in ('MMZSQ_COCO_ROOT', 'MMZSQ_COCO_TRAIN_ROOT')}
    os.environ.update(MMZSQ_COCO_ROOT=root, MMZSQ_COCO_TRAIN_ROOT=root)
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _synthesis(cfg):
    """The config's Stage I settings (``None``: trained on real data)."""
    return (cfg.get('train_cfg') or {}).get('synthesis')


def toy_overrides(cfg: Config, coco_root: str, set_root: str) -> dict:
    """``--cfg-options`` keys for a toy run of a shipped config."""
    opts = {}
    if 'init_checkpoint' in cfg.model:
        opts['model.init_checkpoint'] = None
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        # no worker processes: on 2 cores each forked worker costs ~2 s to
        # start and a loader ~5 s to shut down (measured), x 3 loaders
        opts[f'{split}_dataloader.num_workers'] = 0
        opts[f'{split}_dataloader.persistent_workers'] = False
        key, ds = f'{split}_dataloader.dataset', loader.dataset
        if split == 'train':
            if _synthesis(cfg):
                opts[f'{key}.data_root'] = set_root
            elif ds.get('data_root') != coco_root:
                # float training configs read data/coco/ (no env var)
                opts[f'{key}.data_root'] = coco_root
        for i, t in enumerate(ds.get('pipeline') or []):
            for k in ('scale', 'img_scale'):
                if k in t:
                    opts[f'{key}.pipeline.{i}.{k}'] = (RES, RES)
        if ds.get('batch_shapes_cfg'):
            opts[f'{key}.batch_shapes_cfg.img_size'] = RES
    syn = _synthesis(cfg)
    if syn:
        opts['train_cfg.synthesis.num_images'] = 2
        if syn.get('teacher_checkpoint'):  # Stage-I-only configs
            opts['train_cfg.synthesis.teacher_checkpoint'] = None
        for i in range(len(syn.stages)):
            opts[f'train_cfg.synthesis.stages.{i}.resolution'] = RES
            opts[f'train_cfg.synthesis.stages.{i}.iters'] = ITERS
    if cfg.get('train_cfg', {}).get('max_iters'):
        opts['train_cfg.max_iters'] = ITERS
    return opts


def as_cli(opts: dict) -> list:
    def fmt(v):
        if isinstance(v, tuple):
            return '(' + ','.join(map(str, v)) + ')'
        return str(v)
    return ['--cfg-options'] + [f'{k}={fmt(v)}' for k, v in opts.items()]


def load_toy(path, coco_root, set_root, work_dir):
    cfg = load_config(path)  # as the tools read it
    opts = toy_overrides(cfg, coco_root, set_root)
    cfg.merge_from_dict(opts)
    cfg.work_dir = str(work_dir)
    return cfg, opts


def _set_root(path, tmp_path):
    """Configs of one teacher share its set (as shipped: one set dir per
    model), so each toy set is synthesised once per module."""
    ds = Config.fromfile(path).train_dataloader.dataset
    shipped = osp.basename(osp.normpath(ds.get('data_root') or 'set'))
    return str(tmp_path.parent / f'set_{shipped}') + '/'


def _check_zsq_config(name, cfg):
    """What the file name promises."""
    model = cfg.model
    assert 'mmzsq' in cfg.custom_imports['imports']
    assert model.type == 'mmzsq.QuantDistillAlgorithm'
    w, a = map(int, re.search(r'w(\d)a(\d)', name).groups())
    assert (model.quantizer.w_bits, model.quantizer.a_bits) == (w, a)
    assert model.quant_mode == ('ptq' if '_ptq_' in name else 'qat')
    assert model.quantizer.get('a_lsq_plus', False) == ('-plus-' in name)
    lw = model.loss_weights
    if '_no-det_' in name:
        assert lw.det == 0
    if '_lsq-real_' in name or '_lsq-plus-real_' in name:
        assert lw.kd == lw.feat == 0
    else:
        assert lw.kd > 0 and lw.feat > 0
    # the IoU term: YOLOv5 W4A8 only (the LSQ baselines train plain LSQ)
    iou = name.startswith('yolov5_') and name.endswith('w4a8.py') and \
        '-real_' not in name or name.startswith('yolov5_n_kd-real_w4a8')
    assert bool(lw.get('iou')) == iou, name
    assert (model.get('iou_loss') is not None) == iou, name
    assert cfg.optim_wrapper.optimizer.type == 'Adam'


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_its_full_runner(path, tiny_coco, tmp_path):
    from mmengine.optim import OptimWrapper
    from mmengine.runner import IterBasedTrainLoop
    name = osp.basename(path)
    cfg, _ = load_toy(path, tiny_coco, _set_root(path, tmp_path), tmp_path)
    if osp.basename(osp.dirname(path)) == 'zsq':
        _check_zsq_config(name, cfg)
        # as shipped: no official mmyolo YOLO11 weights, a converted .pt
        assert Config.fromfile(path).model.init_checkpoint.startswith(
            'work_dirs/weights/yolo11' if name.startswith('yolo11_')
            else 'https://download.openmmlab')
    runner = build_runner(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
    assert isinstance(runner.optim_wrapper, OptimWrapper)
    n_params = sum(len(g['params'])
                   for g in runner.optim_wrapper.optimizer.param_groups)
    assert n_params > 0
    scheds = runner.build_param_scheduler(cfg.get('param_scheduler') or [])
    assert len(scheds) == len(cfg.get('param_scheduler') or [])
    loop = runner.build_train_loop(cfg.train_cfg)
    assert len(loop.dataloader.dataset) > 0
    if 'max_iters' in cfg.train_cfg:
        assert isinstance(loop, IterBasedTrainLoop)
    for split in ('val', 'test'):
        if cfg.get(f'{split}_cfg'):
            getattr(runner, f'build_{split}_loop')(cfg[f'{split}_cfg'])
    hooks = {type(h).__name__ for h in runner.hooks}
    assert {'CheckpointHook', 'LoggerHook'} <= hooks
    assert any('ParamSchedulerHook' in h for h in hooks)  # (mmyolo's too)


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_mmzsq_tools_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _run_tool(main, argv):
    try:
        main(argv)
    except SystemExit as e:  # a one-line `error:` from the tool
        pytest.fail(f'tools exited with {e.code}')


# one config per family x method
E2E = [f'yolov5_n_{m}w4a8.py' for m in
       ('', 'ptq_', 'lsq-real_', 'lsq-plus-real_', 'no-det_', 'kd-real_')] + \
      [f'yolo11_s_{m}w4a8.py' for m in
       ('', 'ptq_', 'lsq-real_', 'lsq-plus-real_', 'no-det_')] + \
      [f'mask-rcnn_r50_fpn_{m}w4a8.py' for m in
       ('', 'ptq_', 'lsq-real_', 'lsq-plus-real_', 'no-det_')] + \
      ['mask-rcnn_swin-t_w8a8.py'] + \
      [f'mask-rcnn_swin-t_{m}w4a8.py' for m in
       ('ptq_', 'lsq-real_', 'lsq-plus-real_', 'no-det_')]


@pytest.mark.parametrize('name', E2E)
def test_train_then_test_through_the_tools(name, tiny_coco, tmp_path):
    path = osp.join(ROOT, 'configs', 'zsq', name)
    cfg = Config.fromfile(path)
    opts = toy_overrides(cfg, tiny_coco, str(tmp_path / 'set'))
    _run_tool(_tool('train'), [path, '--work-dir', str(tmp_path / 'train')]
              + as_cli(opts))
    ckpt = tmp_path / 'train' / f'iter_{ITERS}.pth'
    assert ckpt.exists()
    state = torch.load(ckpt, map_location='cpu',
                       weights_only=False)['state_dict']
    init = [v for k, v in state.items()
            if k.startswith('architecture.') and k.endswith(
                'fake_quant.initialized')]
    assert init and all(int(v) == 1 for v in init)
    assert any(k.startswith('teacher.') for k in state)
    if '-real_' not in name:
        assert (tmp_path / 'set' / 'annotations.json').exists()

    preds = tmp_path / 'preds.pkl'
    _run_tool(_tool('test'), [path, str(ckpt), '--work-dir',
                              str(tmp_path / 'test'), '--out', str(preds)]
              + as_cli(opts))
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 2  # every val image went through the student
    for r in results:
        assert r['pred_instances']['bboxes'].shape[-1] == 4
    runs = [d for d in os.listdir(tmp_path / 'test')
            if osp.isfile(tmp_path / 'test' / d / f'{d}.json')]
    metrics = json.load(open(tmp_path / 'test' / runs[0] / f'{runs[0]}.json'))
    # (random weights may detect nothing: CocoMetric then reports no mAP)
    for k in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0.0 <= metrics.get(k, 0.0) <= 1.0, metrics
