"""QuantDistillAlgorithm: loss terms, modes and bad input."""
import copy
import logging

import pytest
import torch
from mmengine.registry import init_default_scope

from mmzsq.models.algorithms import NonFiniteLossError
from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.registry import MODELS
from tests.conftest import needs_coco128, needs_yolov5n
from tests.data.qat_configs import (tiny_two_stage, two_stage_batch,
                                    upstream_cfg)

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

    from tests.data.qat_configs import small_yolo_cfg
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
        algo.parse_losses(losses)[0].backward()
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
    algo.parse_losses(algo(**yolo_batch(algo), mode='loss'))[0].backward()
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
    algo.parse_losses(losses)[0].backward()
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


# ------------------------------------------------ recipe switches (#12)
def _bns(module):
    from torch.nn.modules.batchnorm import _BatchNorm
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def _outputs(module, names):
    """Forward hooks recording the outputs of ``module``'s ``names``."""
    mods, out, handles = dict(module.named_modules()), {}, []
    for n in names:
        handles.append(mods[n].register_forward_hook(
            lambda m, i, o, n=n: out.setdefault(n, o)))
    return out, handles


def test_defaults_reproduce_the_former_loss_bitwise():
    """Defaults = the former recipe: frozen BN, L_feat = mean over
    backbone and neck outputs of the mean MSE over their tensors, L_KD
    averaged per anchor; checked against plain forward hooks."""
    torch.manual_seed(0)
    algo = yolo_algo()
    assert algo.bn_mode == 'frozen' and algo.freeze_bn_stats
    assert algo.feat_layers == ['backbone', 'neck']
    assert algo.kd_loss.reduction == 'anchor_mean'
    algo.train()
    assert not any(m.training for m in _bns(algo.architecture))
    names = ['backbone', 'neck', 'bbox_head.head_module']
    s_out, hs = _outputs(algo.architecture, names)
    t_out, ht = _outputs(algo.teacher, names)
    data = yolo_batch(algo)
    losses = algo(**copy.deepcopy(data), mode='loss')
    for h in hs + ht:
        h.remove()
    w = algo.loss_weights
    feat = sum(sum(torch.nn.functional.mse_loss(a.float(), b.float())
                   for a, b in zip(s_out[n], t_out[n])) / len(s_out[n])
               for n in names[:2]) / 2
    assert torch.equal(losses['loss_feat'], w['feat'] * feat)
    kd = algo.kd_loss(s_out[names[2]], t_out[names[2]])
    assert torch.equal(losses['loss_kd'], w['kd'] * kd)
    # the former switch gives the same numbers
    torch.manual_seed(0)
    legacy = yolo_algo(freeze_bn_stats=True, bn_mode='frozen',
                       feat_layers=['backbone', 'neck'])
    legacy.train()
    again = legacy(**copy.deepcopy(data), mode='loss')
    assert _terms(again) == _terms(losses)


def test_bn_mode_train_updates_the_statistics_with_bn_momentum():
    algo = yolo_algo(bn_mode='train', bn_momentum=0.03,
                     loss_weights=dict(det=0.0, kd=0.0, feat=1.0))
    algo.train()
    bns = _bns(algo.architecture)
    assert all(m.training and m.momentum == 0.03 for m in bns)
    assert not algo.freeze_bn_stats
    assert not any(m.training for m in _bns(algo.teacher))
    before = bns[3].running_mean.clone()
    algo(**yolo_batch(algo), mode='loss')
    assert not torch.equal(before, bns[3].running_mean)
    assert yolo_algo(freeze_bn_stats=False).bn_mode == 'train'


@pytest.mark.parametrize('kw,match', [
    (dict(bn_mode='learn'), 'bn_mode=.learn. unknown'),
    (dict(bn_mode='train', freeze_bn_stats=True), 'drop freeze_bn_stats'),
    (dict(bn_mode='train', quant_mode='ptq'), "set bn_mode='frozen'"),
    (dict(bn_momentum=0.03), "needs bn_mode='train'"),
])
def test_bad_bn_mode_is_a_config_error(kw, match):
    from mmzsq.utils.errors import ConfigError
    with pytest.raises(ConfigError, match=match):
        yolo_algo(**kw)


def _raw_batches(n, size=64):
    from mmdet.structures import DetDataSample
    torch.manual_seed(1)
    meta = dict(img_shape=(size, size), ori_shape=(size, size),
                scale_factor=(1., 1.), pad_param=[0., 0., 0., 0.])
    return [dict(inputs=[(torch.rand(3, size, size) * 255).byte()
                         for _ in range(2)],
                 data_samples=[DetDataSample(metainfo=meta)
                               for _ in range(2)]) for _ in range(n)]


def test_reestimate_bn_is_the_cumulative_average_of_quantized_batches():
    from mmzsq.utils.errors import ConfigError
    algo = yolo_algo(bn_mode='reestimate')
    algo.train()
    bn = algo.architecture.backbone.stage2[0].bn
    seen = []
    h = bn.register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    momentum = bn.momentum
    assert algo.reestimate_bn(_raw_batches(3)) == 3
    h.remove()
    assert len(seen) == 3 and bn.momentum == momentum
    mean = sum(x.mean(dim=(0, 2, 3)) for x in seen) / 3
    var = sum(x.var(dim=(0, 2, 3)) for x in seen) / 3
    assert torch.allclose(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
    assert torch.allclose(bn.running_var, var, rtol=1e-4, atol=1e-5)
    # the input is the quantized one (the conv before it is quantized)
    assert algo.architecture.backbone.stage2[0].conv.input_fake_quant \
        .initialized.item() == 1
    assert algo.training and not bn.training  # frozen again
    stats = bn.running_mean.clone()
    with pytest.raises(ConfigError, match='no batches'):
        algo.reestimate_bn([])
    assert torch.equal(bn.running_mean, stats)


def test_feat_taps_every_conv_and_bn_output():
    from mmzsq.utils.errors import ConfigError
    algo = yolo_algo(feat_layers=[], feat_types=['Conv2d', 'BatchNorm2d'],
                     loss_weights=dict(det=0.0, kd=0.0, feat=1.0))
    mods = dict(algo.architecture.named_modules())
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in mods.values())
    n_bn = len(_bns(algo.architecture))
    assert len(algo.feat_layers) == n_conv + n_bn == 117
    assert 'bbox_head.head_module.convs_pred.0' in algo.feat_layers
    algo.train()
    losses = algo(**yolo_batch(algo), mode='loss')
    assert 0 < float(losses['loss_feat']) < float('inf')
    algo.parse_losses(losses)[0].backward()  # prediction convs are tapped
    assert algo.architecture.bbox_head.head_module.convs_pred[0] \
        .weight.grad.abs().sum() > 0
    # L_feat is the mean over the taps
    kw = dict(loss_weights=dict(det=0.0, kd=0.0, feat=1.0))
    one = {}
    for names in (['backbone.stem.conv'], ['neck.reduce_layers.2.bn'],
                  ['backbone.stem.conv', 'neck.reduce_layers.2.bn']):
        torch.manual_seed(0)
        a = yolo_algo(feat_layers=names, **kw)
        one[len(one)] = a(**yolo_batch(a), mode='loss')['loss_feat']
    assert torch.allclose(one[2], (one[0] + one[1]) / 2, rtol=1e-6)
    drop = yolo_algo(feat_layers=[], feat_types=['Conv2d'],
                     feat_exclude=[r'^bbox_head\.'])
    assert len(drop.feat_layers) == n_conv - 3
    with pytest.raises(ConfigError, match="feat_types \\['Conv2D'\\]"):
        yolo_algo(feat_types=['Conv2D'])
    with pytest.raises(ConfigError, match='not modules of both'):
        yolo_algo(feat_layers=['backbone', 'nekc'])
    with pytest.raises(ConfigError, match='no feature taps'):
        yolo_algo(feat_layers=[], feat_exclude=['.'])


def test_two_stage_taps_the_teacher_does_not_run_are_named():
    from mmzsq.utils.errors import ConfigError
    init_default_scope('mmdet')
    arch = tiny_two_stage(upstream_cfg(
        'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py').model)
    cfg = dict(type='mmzsq.QuantDistillAlgorithm', architecture=arch,
               quantizer=dict(type='mmzsq.EagerLSQQuantizer'),
               loss_weights=dict(det=0.0, kd=0.0, feat=1.0),
               feat_types=['Conv2d'])
    algo = MODELS.build(copy.deepcopy(cfg))
    algo.train()
    with pytest.raises(ConfigError, match='roi_head.mask_head.*feat_exclude'):
        algo(**two_stage_batch(algo), mode='loss')
    algo = MODELS.build(dict(cfg, feat_exclude=[r'^roi_head\.mask_head']))
    algo.train()
    losses = algo(**two_stage_batch(algo), mode='loss')
    assert 0 < float(losses['loss_feat']) < float('inf')
    assert 'rpn_head.rpn_cls' in algo.feat_layers


def test_train_mode_leaves_the_teacher_in_eval():
    """train() sets the student (BN frozen) without touching the teacher,
    puts back a teacher module someone set to train, and eval() is eval."""
    from torch.nn.modules.batchnorm import _BatchNorm
    algo = yolo_algo()
    for _ in range(2):
        algo.train()
        assert algo.training
        assert not any(m.training for m in algo.teacher.modules())
        arch = list(algo.architecture.modules())
        assert all(m.training for m in arch if not isinstance(m, _BatchNorm))
        assert not any(m.training for m in arch if isinstance(m, _BatchNorm))
    algo.teacher.backbone.stem.train()
    algo.train()
    assert not any(m.training for m in algo.teacher.modules())
    # a repeated train() skips the work only while every flag is as it left
    # them: a student module someone set to eval is put back too
    conv = algo.architecture.neck.reduce_layers[2].conv
    conv.eval()
    algo.train()
    assert conv.training
    algo.eval()
    assert not any(m.training for m in algo.modules())
    algo.train()
    assert all(m.training for m in algo.architecture.modules()
               if not isinstance(m, _BatchNorm))
    with pytest.raises(ValueError, match='boolean'):
        algo.train('yes')


def _step(algo, data):
    """One loss + backward: the loss terms and every gradient."""
    algo.zero_grad()
    losses = algo(**copy.deepcopy(data), mode='loss')
    algo.parse_losses(losses)[0].backward()
    return _terms(losses), {n: p.grad.clone() for n, p in
                            algo.architecture.named_parameters()
                            if p.grad is not None}


def test_compile_runs_the_student_as_graphs_with_the_same_losses():
    """``compile``: the first (initialising) step eager, then the
    student's backbone, neck and head module as whole graphs (traced
    fake quantizers, recorders included; no graph break), the teacher's
    as inference graphs, and L_KD and the IoU term, giving the eager
    losses and gradients.  ``aot_eager``: dynamo + AOTAutograd without
    inductor's C++ build (the fused kernels are tested in
    test_lsq_fake_quantize)."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    # conf_thr=0: every prior counts, the term is not 0 with random heads
    iou = dict(loss_weights=dict(det=0.04, kd=0.1, feat=1.0, iou=1.0),
               iou_loss=dict(type='mmzsq.DecodedBoxIoULoss', conf_thr=0.0))
    eager = yolo_algo(**iou)
    compiled = yolo_algo(compile=dict(backend='aot_eager'), **iou)
    compiled.load_state_dict(eager.state_dict())
    assert compiled.compiled_parts.names == [
        'backbone', 'neck', 'bbox_head.head_module']
    eager.train(), compiled.train()
    data = yolo_batch(eager)
    torch._dynamo.reset()
    counters.clear()
    for step in range(2):
        want, want_g = _step(eager, data)
        got, got_g = _step(compiled, data)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-7), k
        assert got_g.keys() == want_g.keys()
        for n in want_g:
            torch.testing.assert_close(got_g[n], want_g[n], rtol=1e-4,
                                       atol=1e-6, msg=n)
        if step == 0:  # initialising the step sizes: eager (only the
            # quantizers' own kernels compiled)
            n0 = counters['stats']['unique_graphs']
            assert not counters['graph_break']
        assert got['loss_iou'] > 0
    # student and teacher: backbone, neck, head module; L_KD; IoU term
    assert counters['stats']['unique_graphs'] - n0 == 8
    assert not counters['graph_break']
    # outside the training step the parts run eagerly again
    assert all(m._compiled_call_impl is None
               for m in compiled.compiled_parts.modules)
    with pytest.raises(Exception, match='model.compile must be'):
        compiled.set_compile('yes')


def test_compile_failure_is_one_warning_and_an_eager_repeat():
    """A compile error (no C++ compiler, ...) inside ``CompiledParts.run``:
    one warning naming the key, ``before_retry``, the eager result, and
    the parts eager from then on."""
    from mmengine.logging import MMLogger

    from mmzsq.models.utils import CompiledParts

    def broken_backend(gm, example_inputs):
        raise RuntimeError('no C++ compiler here')

    class Backbone(torch.nn.Module):  # (dynamo skips torch.nn's own)
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x).relu()

    net = torch.nn.Module()
    net.backbone = Backbone()
    parts = CompiledParts.build(net, dict(backend=broken_backend),
                                'model.compile')
    calls, rewound = [], []

    def fn(x):
        calls.append(1)
        return net.backbone(x)

    x = torch.randn(2, 4)
    torch._dynamo.reset()
    logger = MMLogger.get_current_instance()
    seen = []

    class Seen(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Seen()
    logger.addHandler(handler)
    try:
        y = parts.run(fn, x, before_retry=lambda: rewound.append(1))
        parts.run(fn, x)
    finally:
        logger.removeHandler(handler)
    assert torch.equal(y, net.backbone(x))
    assert not parts.enabled and rewound == [1] and len(calls) == 3
    warned = [m for m in seen if 'torch.compile of backbone failed' in m]
    assert len(warned) == 1 and 'model.compile=False' in warned[0]
    assert net.backbone._compiled_call_impl is None
    with pytest.raises(Exception, match='model.compile must be'):
        CompiledParts.build(net, 'yes', 'model.compile')
