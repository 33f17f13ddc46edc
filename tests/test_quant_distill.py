"""QuantDistillAlgorithm: loss terms, modes and bad input."""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope

from mmzsq.models.algorithms import NonFiniteLossError
from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.registry import MODELS
from tests.conftest import needs_coco128, needs_yolov5n
from tests.zsq_utils import tiny_two_stage, two_stage_batch, upstream_cfg

YOLO = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'


def yolo_algo(ckpt=None, num_classes=None, **kw):
    init_default_scope('mmyolo')
    arch = upstream_cfg(YOLO).model
    if num_classes:
        arch.bbox_head.head_module.num_classes = num_classes
    cfg = dict(type='mmzsq.QuantDistillAlgorithm', architecture=arch,
               init_checkpoint=ckpt,
               quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=4,
                              a_bits=8),
               loss_weights=dict(det=0.04, kd=0.1, feat=1.0))
    cfg.update(kw)
    algo = MODELS.build(cfg)
    algo.init_weights()
    return algo


def yolo_batch(algo, size=96):
    torch.manual_seed(0)
    x = torch.rand(2, 3, size, size) * 255
    ds = dict(bboxes_labels=torch.tensor([[0, 0, 10, 10, 60, 70.],
                                          [1, 2, 20, 30, 90, 90.]]),
              img_metas=[dict(batch_input_shape=(size, size))] * 2)
    return algo.data_preprocessor(dict(inputs=x, data_samples=ds), True)


def coco128_batch(algo, size=128):
    """Two real coco128 images with their boxes, preprocessed."""
    from mmyolo.datasets import yolov5_collate
    from mmyolo.registry import DATASETS

    from tests.zsq_utils import small_yolo_cfg
    cfg = small_yolo_cfg('configs/zsq/yolov5_n_w4a8.py', '/tmp', res=size,
                         n_train=2)
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    return algo.data_preprocessor(yolov5_collate([ds[0], ds[1]]), True)


def _terms(losses):
    return {k: float(v) for k, v in losses.items() if 'loss' in k}


@needs_yolov5n
@needs_coco128
def test_every_loss_term_nonzero_and_decreasing(yolov5n_mmyolo_ckpt):
    algo = yolo_algo(yolov5n_mmyolo_ckpt)
    algo.train()
    assert not algo.teacher.training  # frozen teacher stays in eval
    data = coco128_batch(algo)
    opt = torch.optim.Adam(
        [p for p in algo.parameters() if p.requires_grad], lr=1e-4)
    history = []
    for _ in range(4):  # (deepcopy: mmyolo normalises targets in place)
        losses = algo(**copy.deepcopy(data), mode='loss')
        history.append(_terms(losses))
        opt.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        torch.nn.utils.clip_grad_norm_(algo.parameters(), 10.0)
        opt.step()
    first, last = history[0], history[-1]
    assert set(first) == {'det_loss_cls', 'det_loss_obj', 'det_loss_bbox',
                          'loss_kd', 'loss_feat'}
    for k in first:
        assert first[k] > 0, k
        assert last[k] < first[k], (k, [h[k] for h in history])
    # teacher untouched, student moved
    t = dict(algo.teacher.named_parameters())
    s = dict(algo.architecture.named_parameters())
    w = 'backbone.stage1.0.conv.weight'
    assert not torch.equal(t[w], s[w])
    assert all(not p.requires_grad for p in algo.teacher.parameters())


def test_terms_switch_off():
    algo = yolo_algo(loss_weights=dict(det=0.0, kd=0.0, feat=1.0))
    losses = algo(**yolo_batch(algo), mode='loss')
    assert set(_terms(losses)) == {'loss_feat'}


def test_ptq_mode_only_learns_step_sizes():
    algo = yolo_algo(quant_mode='ptq')
    algo.train()
    trainable = [n for n, p in algo.named_parameters() if p.requires_grad]
    assert trainable and all('fake_quant.' in n for n in trainable)
    before = copy.deepcopy(algo.architecture.state_dict())
    opt = torch.optim.Adam([p for p in algo.parameters() if p.requires_grad],
                           lr=1e-3)
    sum(v for k, v in algo(**yolo_batch(algo), mode='loss').items()
        if 'loss' in k).backward()
    opt.step()
    after = algo.architecture.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all('fake_quant' in k for k in changed), changed


@needs_yolov5n
def test_predict_and_tensor_modes_run_the_quantized_student(
        yolov5n_mmyolo_ckpt):
    algo = yolo_algo(yolov5n_mmyolo_ckpt)
    algo.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        s = algo(x, mode='tensor')[0][0]
        t = algo.teacher._forward(x)[0][0]
        assert not torch.allclose(s, t, atol=1e-4)
        for m in algo.architecture.modules():
            if isinstance(m, LSQFakeQuantize):
                m.toggle_fake_quant(False)
        assert torch.allclose(algo(x, mode='tensor')[0][0], t, atol=1e-5)


def test_two_stage_kd_on_rpn_and_rois():
    init_default_scope('mmdet')
    arch = tiny_two_stage(upstream_cfg(
        'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py').model)
    algo = MODELS.build(dict(
        type='mmzsq.QuantDistillAlgorithm', architecture=arch,
        quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=2, a_bits=2),
        loss_weights=dict(det=0.04, kd=0.2, feat=0.1)))
    algo.init_weights()
    algo.train()
    losses = algo(**two_stage_batch(algo), mode='loss')
    terms = _terms(losses)
    for k in ('det_loss_rpn_cls', 'det_loss_cls', 'det_loss_mask',
              'loss_kd', 'loss_feat'):
        assert terms[k] > 0, k
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert algo.architecture.rpn_head.rpn_conv.weight.grad is not None


def test_class_count_mismatch_is_a_clear_error():
    init_default_scope('mmyolo')
    arch = upstream_cfg(YOLO).model
    teacher = copy.deepcopy(arch)
    arch.bbox_head.head_module.num_classes = 3
    with pytest.raises(ValueError, match='teacher has 80 classes but the '
                       'student 3'):
        MODELS.build(dict(type='mmzsq.QuantDistillAlgorithm',
                          architecture=arch, teacher=teacher,
                          quantizer=dict(type='mmzsq.EagerLSQQuantizer')))


@needs_yolov5n
def test_checkpoint_class_count_mismatch(yolov5n_mmyolo_ckpt):
    with pytest.raises(ValueError, match='num_classes'):
        yolo_algo(yolov5n_mmyolo_ckpt, num_classes=3)


def test_nan_loss_stops_naming_step_and_term():
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('iter', 7)
    algo = yolo_algo(loss_weights=dict(det=0.04, kd=0.1,
                                       feat=float('nan')))
    with pytest.raises(NonFiniteLossError,
                       match=r'loss_feat is nan at step 7'):
        algo(**yolo_batch(algo), mode='loss')


def test_bad_bits_in_config_is_a_one_line_tool_error(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT
    out = subprocess.run(
        [sys.executable, 'tools/train.py', 'configs/zsq/yolov5_n_w4a8.py',
         '--work-dir', str(tmp_path), '--cfg-options',
         'model.quantizer.w_bits=9', 'model.init_checkpoint=None'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: w_bits must be an integer in 2..8, got 9')
    assert 'Traceback' not in out.stderr
