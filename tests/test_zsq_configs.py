"""Every configs/zsq config parses and builds (tiny model overrides)."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmzsq.models.quantizers import is_quantized
from mmzsq.registry import MODELS
from tests.conftest import ROOT
from tests.zsq_utils import tiny_two_stage

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'zsq', '*.py')))


def test_the_advertised_configs_exist():
    names = {osp.basename(c) for c in CONFIGS}
    assert 'mask-rcnn_swin-t_w8a8.py' in names
    for size in 'nsml':
        for bits in ('w8a8', 'w6a6', 'w5a5', 'w4a8', 'w4a4'):
            assert f'yolov5_{size}_{bits}.py' in names
    for fam, bits in [('mask-rcnn_r50_fpn', ('w8a8', 'w4a8')),
                      ('mask-rcnn_swin-t', ('w8a8', 'w6a6', 'w4a8')),
                      ('mask-rcnn_swin-s', ('w8a8', 'w6a6', 'w4a8'))]:
        for b in bits:
            assert f'{fam}_{b}.py' in names
    for size in 'sml':
        for bits in ('w8a8', 'w6a6', 'w4a8'):
            assert f'yolo11_{size}_{bits}.py' in names
    for kind in ('lsq-real', 'ptq', 'no-det'):
        assert any(f'_{kind}_' in n for n in names)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds(path):
    name = osp.basename(path)
    cfg = Config.fromfile(path)
    assert 'mmzsq' in cfg.custom_imports['imports']
    model = cfg.model
    assert model.type == 'mmzsq.QuantDistillAlgorithm'
    w, a = map(int, re.search(r'w(\d)a(\d)', name).groups())
    assert (model.quantizer.w_bits, model.quantizer.a_bits) == (w, a)
    if name.startswith('yolo11_'):
        # no official mmyolo YOLO11 weights: a converted Ultralytics .pt
        assert model.init_checkpoint.startswith('work_dirs/weights/yolo11')
    else:
        assert model.init_checkpoint.startswith('https://download.openmmlab')
    assert model.quant_mode == ('ptq' if '_ptq_' in name else 'qat')
    lw = model.loss_weights
    if '_no-det_' in name:
        assert lw.det == 0
    if '-real_' in name:
        assert lw.kd == lw.feat == 0
        assert cfg.train_dataloader.dataset.type in ('YOLOv5CocoDataset',
                                                     'CocoDataset')
    else:
        assert cfg.train_dataloader.dataset.type == 'mmzsq.SyntheticDetDataset'
        assert lw.kd > 0 and lw.feat > 0
    assert cfg.optim_wrapper.optimizer.type == 'Adam'
    metric = cfg.val_evaluator.metric
    # tiny overrides: the build, not the size, is under test
    arch = model.architecture
    if 'roi_head' in arch:
        assert set(metric) == {'bbox', 'segm'}
        tiny_two_stage(arch)
    else:
        assert metric == 'bbox'
        arch.backbone.widen_factor = arch.neck.widen_factor = 0.125
        arch.bbox_head.head_module.widen_factor = 0.125
    model.init_checkpoint = None
    init_default_scope(cfg.default_scope)
    algo = MODELS.build(model)
    assert any(is_quantized(m) for m in algo.architecture.modules())
    assert not any(is_quantized(m) for m in algo.teacher.modules())


def test_lsq_plus_config_builds_asymmetric_activations():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'zsq',
                                   'yolov5_n_lsq-plus-real_w4a8.py'))
    assert cfg.model.quantizer.a_lsq_plus is True
