"""EagerLSQQuantizer wraps exactly the intended modules."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope

from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.models.quantizers import EagerLSQQuantizer, is_quantized
from mmzsq.registry import MODELS
from tests.conftest import needs_yolov5n
from tests.data.qat_configs import tiny_two_stage, upstream_cfg

HEAD_PRED = ['roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg',
             'roi_head.mask_head.conv_logits', 'rpn_head.rpn_cls',
             'rpn_head.rpn_reg']


def _convs_linears(model):
    return [n for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def _quantized(model):
    return [n for n, m in model.named_modules() if is_quantized(m)]


def _yolov5n():
    init_default_scope('mmyolo')
    cfg = upstream_cfg(
        'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py')
    return MODELS.build(cfg.model)


@needs_yolov5n
def test_yolov5n_all_but_first_and_prediction_layers(yolov5n_mmyolo_ckpt):
    from mmengine.runner import load_checkpoint
    model = _yolov5n()
    load_checkpoint(model, yolov5n_mmyolo_ckpt, map_location='cpu')
    model.eval()
    float_model = copy.deepcopy(model)
    all_ = _convs_linears(model)
    EagerLSQQuantizer(w_bits=4, a_bits=8).prepare(model)
    skipped = sorted(set(all_) - set(_quantized(model)))
    assert skipped == ['backbone.stem.conv'] + [
        f'bbox_head.head_module.convs_pred.{i}' for i in range(3)]
    assert len(_quantized(model)) == len(all_) - 4 == 56
    conv = model.backbone.stage1[0].conv
    assert conv.weight_fake_quant.bits == 4
    assert conv.input_fake_quant.bits == 8
    assert isinstance(conv, nn.Conv2d)  # still a Conv2d for mmdet code
    # same parameter names: the float checkpoint loads into it
    fkeys = set(float_model.state_dict())
    assert fkeys <= set(model.state_dict())
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        ref = float_model._forward(x)[0][0]
        q = model._forward(x)[0][0]
        assert not torch.allclose(q, ref, atol=1e-3)  # it does quantize
        for m in model.modules():
            if isinstance(m, LSQFakeQuantize):
                m.toggle_fake_quant(False)
        assert torch.allclose(model._forward(x)[0][0], ref, atol=1e-5)


def test_overrides_by_pattern_type_and_first():
    init_default_scope('mmyolo')
    model = _yolov5n()
    q = EagerLSQQuantizer(skip_first=False, skip_patterns=[r'^neck\.'],
                          quantize_types=['Conv2d'])
    names = q.select(model)
    assert 'backbone.stem.conv' in names
    assert 'bbox_head.head_module.convs_pred.0' in names  # no default skip
    assert not any(n.startswith('neck.') for n in names)
    model2 = _yolov5n()
    names2 = EagerLSQQuantizer(skip_types=['Conv2d']).select(model2)
    assert names2 == []


@pytest.mark.parametrize('upstream,first', [
    ('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'backbone.conv1'),
    ('mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
     'backbone.patch_embed.projection'),
])
def test_two_stage_tiny(upstream, first):
    init_default_scope('mmdet')
    model = MODELS.build(tiny_two_stage(upstream_cfg(upstream).model))
    all_ = _convs_linears(model)
    EagerLSQQuantizer(w_bits=4, a_bits=8).prepare(model)
    q = _quantized(model)
    assert sorted(set(all_) - set(q)) == sorted([first] + HEAD_PRED)
    assert 'roi_head.bbox_head.shared_fcs.0' in q
    assert 'roi_head.mask_head.convs.0.conv' in q
    if 'swin' in upstream:  # Swin: qkv / proj / FFN / patch merging
        for n in ['backbone.stages.0.blocks.0.attn.w_msa.qkv',
                  'backbone.stages.0.blocks.0.attn.w_msa.proj',
                  'backbone.stages.0.blocks.0.ffn.layers.0.0',
                  'backbone.stages.0.blocks.0.ffn.layers.1',
                  'backbone.stages.0.downsample.reduction']:
            assert n in q, n
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 64, 64))
        cls, _ = model.rpn_head(feats)
    assert torch.isfinite(cls[0]).all()


@pytest.mark.parametrize('kw', [dict(w_bits=9), dict(a_bits=1),
                                dict(w_bits=4.0)])
def test_bad_bits(kw):
    with pytest.raises(ValueError, match='2..8'):
        EagerLSQQuantizer(**kw)


def test_activation_init_batches_reach_the_input_quantizers_only():
    init_default_scope('mmyolo')
    model = EagerLSQQuantizer(w_bits=4, a_bits=8,
                              a_init_batches=3).prepare(_yolov5n())
    conv = model.backbone.stage1[0].conv
    assert conv.input_fake_quant.init_batches == 3
    assert conv.weight_fake_quant.init_batches == 1
    with pytest.raises(ValueError, match='a_init_batches must be a positive'):
        EagerLSQQuantizer(a_init_batches=0)
