"""YOLO11 zero-shot quantization: configs, YOLOv8KDLoss, and a Stage I +
Stage II smoke test on a randomly initialised YOLO11n (64 px, 2 + 2 Stage I
steps, 2 QAT iterations)."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope

from tests.conftest import ROOT

# the zero-shot method configs (baselines:
# tests/test_configs/test_shipped_configs.py)
CONFIGS = sorted(c for c in glob.glob(osp.join(ROOT, 'configs', 'zsq',
                                               'yolo11_*.py'))
                 if re.fullmatch(r'yolo11_[a-z]_w\da\d\.py',
                                 osp.basename(c)))
RES = 64


def test_the_yolo11_configs_and_paper_values():
    names = {osp.basename(c) for c in CONFIGS}
    assert names == {f'yolo11_{s}_{b}.py' for s in 'sml'
                     for b in ('w8a8', 'w6a6', 'w4a8')}
    for path in CONFIGS:
        name = osp.basename(path)
        cfg = Config.fromfile(path)
        size = name.split('_')[1]
        w, a = map(int, re.search(r'w(\d)a(\d)', name).groups())
        m = cfg.model
        assert (m.quantizer.w_bits, m.quantizer.a_bits) == (w, a)
        assert m.loss_weights.to_dict() == dict(det=0.01, kd=0.1, feat=1.0)
        assert m.kd_loss.to_dict() == dict(type='mmzsq.YOLOv8KDLoss',
                                           tau=4.0)
        assert m.feat_layers == ['backbone', 'neck']
        assert cfg.optim_wrapper.optimizer.lr == 1e-5
        assert m.init_checkpoint == \
            f'work_dirs/weights/yolo11{size}_mmyolo.pth'
        ds = cfg.train_dataloader.dataset
        assert cfg.train_cfg.type == 'mmzsq.ZSQTrainLoop'
        assert ds.data_root == f'work_dirs/zsq_sets/yolo11_{size}/'
        assert not any(t['type'] in ('Mosaic', 'mmdet.Albu', 'Albu')
                       for t in ds.pipeline)
        syn = cfg.train_cfg.synthesis
        assert (syn.det_loss_weight, syn.prior_loss.loss_weight,
                syn.tv_loss.loss_weight, syn.l2_loss.loss_weight) == \
            (1e-3, 1e-3, 0.0, 5e-5)
        assert [(s.resolution, s.iters) for s in syn.stages] == \
            [(160, 3000), (640, 3000)]
        assert syn.lr == 1e-2
        # the architecture is the float YOLO11 config of that size
        ref = Config.fromfile(
            osp.join(ROOT, 'configs', 'yolo11', f'yolo11_{size}_coco.py'))
        arch = m.architecture
        for key in ('backbone', 'neck'):
            assert arch[key].to_dict() == ref.model[key].to_dict(), key
        assert arch.bbox_head.to_dict() == ref.model.bbox_head.to_dict()


def test_yolov8_kd_loss():
    from mmzsq.models.losses import YOLOv8KDLoss
    torch.manual_seed(0)
    shapes = [(8, 8), (4, 4)]
    cls = [torch.randn(2, 5, h, w) for h, w in shapes]
    box = [torch.rand(2, 4, h, w) for h, w in shapes]
    dist = [torch.randn(2, h * w, 4, 16) for h, w in shapes]
    loss = YOLOv8KDLoss(tau=4.0)
    assert float(loss((cls, box, dist), (cls, box, dist))) == \
        pytest.approx(0, abs=1e-6)
    other_cls = [c + torch.randn_like(c) for c in cls]
    other_dist = [d + torch.randn_like(d) for d in dist]
    cls_only = float(loss((cls, box), (other_cls, box)))
    assert cls_only > 0
    # teacher without DFL outputs (eval format): class KL only
    assert float(loss((cls, box, dist), (other_cls, box))) == \
        pytest.approx(cls_only)
    both = float(loss((cls, box, dist), (other_cls, box, other_dist)))
    assert both > cls_only
    assert float(YOLOv8KDLoss(dfl_weight=0)(
        (cls, box, dist), (other_cls, box, other_dist))) == \
        pytest.approx(cls_only)
    # gradients reach the student
    s = [c.clone().requires_grad_() for c in cls]
    loss((s, box, dist), (other_cls, box, other_dist)).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in s)


def _yolo11n_model_cfg():
    return Config.fromfile(
        osp.join(ROOT, 'configs', 'yolo11', 'yolo11_n_coco.py')).model


def test_default_quantizer_keeps_stem_and_prediction_convs_float():
    from mmzsq.models.quantizers import EagerLSQQuantizer
    from mmzsq.registry import MODELS
    init_default_scope('mmyolo')
    model = MODELS.build(_yolo11n_model_cfg())
    q = EagerLSQQuantizer()
    skipped = sorted(set(q.candidates(model)) - set(q.select(model)))
    assert skipped == sorted(
        ['backbone.stem.conv'] +
        [f'bbox_head.head_module.{b}_preds.{i}.2'
         for b in ('cls', 'reg') for i in range(3)])


def _shrink_pipeline(pipeline, res):
    for t in pipeline:
        if 'scale' in t and t['type'] != 'mmdet.RandomFlip':
            t['scale'] = (res, res)
    return pipeline


def test_stage1_and_stage2_smoke_yolo11n(tmp_path):
    from mmengine.runner import save_checkpoint

    from mmzsq.models.fake_quants import LSQFakeQuantize
    from mmzsq.models.losses import YOLOv8KDLoss
    from mmzsq.registry import MODELS
    from mmzsq.synthesis import SyntheticSet
    from mmzsq.utils.cli import build_runner

    # a random float YOLO11n checkpoint, built from configs/yolo11/
    init_default_scope('mmyolo')
    n_cfg = _yolo11n_model_cfg()
    torch.manual_seed(0)
    float_model = MODELS.build(n_cfg)
    float_model.init_weights()
    ckpt = str(tmp_path / 'yolo11n_random.pth')
    save_checkpoint(float_model.state_dict(), ckpt)

    # the YOLO11 zsq config, re-sized to n and shrunk for the CPU: Stage I
    # (2 + 2 steps) then 2 QAT iterations, in one Runner
    cfg = Config.fromfile(osp.join(ROOT, 'configs/zsq/yolo11_s_w8a8.py'))
    cfg.work_dir = str(tmp_path / 'qat')
    cfg.model.architecture = ConfigDict(**n_cfg, use_syncbn=False)
    cfg.model.init_checkpoint = ckpt
    set_dir = str(tmp_path / 'set') + '/'
    ds = cfg.train_dataloader.dataset
    ds.data_root = set_dir
    _shrink_pipeline(ds.pipeline, RES)
    cfg.train_cfg.update(max_iters=2, val_interval=100)
    cfg.train_cfg.synthesis.update(
        num_images=2, batch_size=2, log_interval=1, amp=False,
        channels_last=False,
        stages=[dict(resolution=RES, iters=2, label_sampling=True),
                dict(resolution=RES, iters=2, label_sampling=False,
                     reinit_images=True)],
        als=dict(interval=1, warmup=1, early_exit=2))
    cfg.train_dataloader.update(batch_size=2, num_workers=0)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=100)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.pop('visualization', None)
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    cfg.randomness = dict(seed=0)

    seen = []
    orig = YOLOv8KDLoss.forward

    def record(self, s, t):
        seen.append((len(s), len(t)))
        return orig(self, s, t)

    YOLOv8KDLoss.forward = record
    try:
        runner = build_runner(cfg)
        runner.train()
    finally:
        YOLOv8KDLoss.forward = orig
    # Stage I wrote the set the Runner then trained on
    assert runner.train_loop.synthesis_stats['done_batches'] == [0]
    coco = SyntheticSet(set_dir).read_index()
    assert len(coco['images']) == 2 and len(coco['annotations']) >= 2
    for im in coco['images']:
        assert (im['width'], im['height']) == (RES, RES)
        assert osp.isfile(osp.join(set_dir, 'images', im['file_name']))
    assert coco['info']['teacher_hash']
    assert len(coco['info']['per_image_final_loss']) == 2
    read_back = runner.train_dataloader.dataset
    assert len(read_back) == 2
    assert sum(len(read_back.get_data_info(i)['instances'])
               for i in range(2)) == len(coco['annotations'])
    # teacher head outputs carry the DFL distributions, as the student's
    assert seen and all(x == (3, 3) for x in seen), seen
    hub = runner.message_hub
    terms = {k[len('train/'):]: hub.get_scalar(k).current()
             for k in hub.log_scalars if k.startswith('train/')
             and 'loss' in k and k != 'train/loss'}
    assert set(terms) == {'det_loss_cls', 'det_loss_bbox', 'det_loss_dfl',
                          'loss_kd', 'loss_feat'}, terms
    for k, v in terms.items():
        assert torch.isfinite(torch.tensor(v)) and v != 0, (k, v)

    algo = runner.model
    fqs = [m for m in algo.architecture.modules()
           if isinstance(m, LSQFakeQuantize)]
    assert fqs and all(bool(m.initialized) for m in fqs)
    # (the forward uses |scale|; the constructor's placeholder is 1)
    assert all(torch.isfinite(m.scale).all() and (m.scale.abs() > 0).all()
               for m in fqs)
    assert all(not torch.equal(m.scale.detach(), torch.ones_like(m.scale))
               for m in fqs)
    assert not any(isinstance(m, LSQFakeQuantize)
                   for m in algo.teacher.modules())
