"""ONNX QDQ export of a real YOLOv5n W8A8 / W4A4 student + onnxruntime.

The student: the shared YOLOv5n weights, LSQ step sizes initialised by one
forward on 2 real coco_tiny images (PTQ-style, no training).

Tolerance ORT vs PyTorch.  The exported graph computes the same integer
codes, but float rounding differs (BN folded into the weights, onnxruntime
int8 kernels, ``x*(1/s)`` vs ``x/s``): an activation within ~1e-6 of a
rounding boundary flips by one code, and such flips propagate through the
~56 quantized layers (each flip changes a 3x3 neighbourhood downstream).
The raw outputs therefore differ the way re-drawn quantization noise
does.  Tolerance: per output, mean |ORT - PyTorch| <= 2x the noise floor =
mean |PyTorch(x) - PyTorch(x + n)|, n ~ N(0, 1e-3) (a quarter of one grey
level, measured: 10-20% of mean |output| for the small bbox logits of a
PTQ-initialised W8A8 YOLOv5n); the FP32 export (no rounding boundaries) is
checked tightly (1e-3 relative).  mAP agreement is measured by
tools/deployment/ort_eval.py (PyTorch vs onnxruntime, same images).
"""
import os.path as osp

import numpy as np
import pytest
import torch

from tests.conftest import COCO_TINY, needs_coco_tiny

W8A8 = 'configs/zsq/yolov5_n_w8a8.py'
W4A4 = 'configs/zsq/yolov5_n_w4a4.py'
RES = 320


def _images(n=2, res=RES):
    import mmcv
    d = osp.join(COCO_TINY, 'val2017')
    files = sorted(f for f in __import__('os').listdir(d))[:n]
    ims = [mmcv.imresize(mmcv.imread(osp.join(d, f)), (res, res))[..., ::-1]
           for f in files]
    x = torch.from_numpy(np.stack(ims).copy()).permute(0, 3, 1, 2)
    return x.float() / 255.0


def _student(config, ckpt, x):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config)
    cfg.model.init_checkpoint = ckpt
    init_default_scope('mmyolo')
    alg = MODELS.build(cfg.model)
    alg.init_weights()
    alg.eval()
    with torch.no_grad():
        alg.architecture._forward(x)  # LSQ step-size init (PTQ-style)
    return alg


def _flat(outs):
    return [t for group in outs for t in group]


def _noise_floor(fn, x):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        a, b = _flat(fn(x)), _flat(fn(x + 1e-3 * torch.randn(
            x.shape, generator=g)))
    return [float((u - v).abs().mean()) for u, v in zip(a, b)]


def _within_floor(ref, got, floor):
    errs = [float(np.abs(r.numpy() - g).mean()) for r, g in zip(ref, got)]
    assert all(e <= 2 * f + 1e-4 for e, f in zip(errs, floor)), (errs, floor)


def _rel_err(ref, got):
    return max(float(np.abs(r.numpy() - g).mean() / np.abs(r.numpy()).mean())
               for r, g in zip(ref, got))


@pytest.fixture(scope='module')
def w8a8(yolov5n_mmyolo_ckpt, tmp_path_factory):
    if not osp.isdir(COCO_TINY):
        pytest.skip('coco_tiny absent')
    x = _images()
    alg = _student(W8A8, yolov5n_mmyolo_ckpt, x)
    path = tmp_path_factory.mktemp('deploy') / 'w8a8.pth'
    torch.save({'state_dict': alg.state_dict()}, path)
    return alg, x, str(path)


def _export(deploy, path):
    from mmzsq.deployment.export import export_onnx
    export_onnx(deploy, str(path), (RES, RES))
    return str(path)


@needs_coco_tiny
def test_w8a8_qdq_export_and_onnxruntime(w8a8, tmp_path):
    import onnx

    from mmzsq.deployment import fold_student
    from mmzsq.deployment import ort_runner as ortr
    from mmzsq.deployment.calibrate import calibrate_outputs
    from mmzsq.deployment.export import export_onnx
    from mmzsq.models.fake_quants import LSQFakeQuantize
    alg, x, _ = w8a8
    student = alg.architecture
    deploy = fold_student(student, lambda m: m._forward(x[:1]))

    # 1. exact student semantics (no output quant): ORT == fake-quant
    exact = _export(deploy, tmp_path / 'exact.onnx')
    m = onnx.load(exact)
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version >= 13
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    ops = ortr.count_ops(exact)
    # one per quantized input; torch merges identical ones (CSP main/short
    # convs reading one tensor with equal PTQ-init step sizes)
    assert 52 <= ops['QuantizeLinear'] <= 56
    assert ops['DequantizeLinear'] >= ops['QuantizeLinear'] + 2 * 56
    int8_w = [i for i in m.graph.initializer if i.data_type == 3]  # INT8
    int32_b = [i for i in m.graph.initializer
               if i.data_type == 6 and i.name.endswith('_int32')]
    assert len(int8_w) == 56 and len(int32_b) == 56
    sess = ortr.make_session(exact, 1)
    got = ortr.run(sess, x)  # batch 2 (dynamic batch)
    with torch.no_grad():
        ref = _flat(student._forward(x))
    assert [tuple(r.shape) for r in ref] == [g.shape for g in got]
    _within_floor(ref, got, _noise_floor(student._forward, x))

    # 2. FP32 export = student with weight codes, activations unquantized
    for q in deploy.modules():
        if hasattr(q, 'quantize'):
            q.quantize = False
    fp32 = _export(deploy, tmp_path / 'fp32.onnx')
    assert ortr.count_ops(fp32).get('QuantizeLinear', 0) == 0
    for n, fq in student.named_modules():
        if isinstance(fq, LSQFakeQuantize) and n.endswith('input_fake_quant'):
            fq.fake_quant_enabled.fill_(0)
    try:
        with torch.no_grad():
            ref32 = _flat(student._forward(x))
    finally:
        for fq in student.modules():
            if isinstance(fq, LSQFakeQuantize):
                fq.fake_quant_enabled.fill_(1)
    got32 = ortr.run(ortr.make_session(fp32, 1), x)
    assert _rel_err(ref32, got32) < 1e-3

    # 3. deploy export (output quant) -> onnxruntime int8 QLinearConv
    for q in deploy.modules():
        if hasattr(q, 'quantize'):
            q.quantize = True
    calibrate_outputs(deploy, lambda b: deploy._forward(b), [x])
    int8 = _export(deploy, tmp_path / 'int8.onnx')
    opt = str(tmp_path / 'int8_opt.onnx')
    sess = ortr.make_session(int8, 1, opt)
    kernels = ortr.int8_kernels(opt)
    assert kernels['QLinearConv'] >= 40, kernels
    got = ortr.run(sess, x)
    with torch.no_grad():
        ref_d = _flat(deploy._forward(x))
    _within_floor(ref_d, got, _noise_floor(deploy._forward, x))
    # 4. + int8 activations between the convs (SiLU, Add, Concat, MaxPool,
    # Resize): onnxruntime runs them as int8 kernels; the extra 8-bit grids
    # (sigmoid, residual sums) are a deploy-time approximation, still
    # within 2x the noise floor (measured 0.97-1.13x on this student)
    int8a = str(tmp_path / 'int8a.onnx')
    export_onnx(deploy, int8a, (RES, RES), int8_activations=[x])
    opt_a = str(tmp_path / 'int8a_opt.onnx')
    sess_a = ortr.make_session(int8a, 1, opt_a)
    ops_a = ortr.count_ops(opt_a)
    assert ops_a.get('QLinearConv', 0) >= 40, ops_a
    for op in ('QLinearSigmoid', 'QLinearMul', 'QLinearAdd'):
        assert ops_a.get(op, 0) >= 5, (op, ops_a)
    assert ops_a.get('Sigmoid', 0) + ops_a.get('QuickGelu', 0) <= 2, ops_a
    assert ops_a.get('DequantizeLinear', 0) <= 8, ops_a
    floor_d = _noise_floor(deploy._forward, x)
    errs = [float(np.abs(r.numpy() - g).mean())
            for r, g in zip(ref_d, ortr.run(sess_a, x))]
    assert all(e <= 2 * f + 1e-4 for e, f in zip(errs, floor_d)), \
        (errs, floor_d)

    # ... and the head's own post-processing runs on the ORT outputs
    from mmdet.structures import DetDataSample
    samples = [DetDataSample(metainfo=dict(
        img_shape=(RES, RES), ori_shape=(RES, RES), scale_factor=(1., 1.),
        pad_param=np.zeros(4, np.float32))) for _ in range(2)]
    ortr.predict(sess, [3, 3, 3], student.bbox_head, x, samples)
    with torch.no_grad():
        ref_s = student.predict(x, [s.clone() for s in samples])
    for s, r in zip(samples, ref_s):  # same top detection
        assert len(s.pred_instances) > 0 and len(r.pred_instances) > 0
        assert int(s.pred_instances.labels[0]) == int(
            r.pred_instances.labels[0])
        assert abs(float(s.pred_instances.scores[0]) -
                   float(r.pred_instances.scores[0])) < 0.1


@needs_coco_tiny
def test_onnxruntime_detector_predicts_as_the_student(w8a8, tmp_path):
    """``mmzsq.ONNXRuntimeDetector`` (what ort_eval.py hands to
    ``Runner.test``) on an exact export: the PyTorch student's detections,
    through the registry and ``test_step``'s ``predict`` mode."""
    from mmdet.structures import DetDataSample

    from mmzsq.deployment import fold_student
    from mmzsq.registry import MODELS
    from mmzsq.utils.errors import UserError
    alg, x, _ = w8a8
    student = alg.architecture
    path = _export(fold_student(student, lambda m: m._forward(x[:1])),
                   tmp_path / 'exact.onnx')
    model = MODELS.build(dict(type='mmzsq.ONNXRuntimeDetector',
                              detector=student, onnx_file=path,
                              work_dir=str(tmp_path / 'ort')))
    assert model.kernels()['QLinearConv'] == 0  # exact: no output quant
    meta = dict(img_shape=(RES, RES), ori_shape=(RES, RES),
                scale_factor=(1., 1.), pad_param=np.zeros(4, np.float32))
    got = model(x, [DetDataSample(metainfo=meta) for _ in x])
    with torch.no_grad():
        ref = student.predict(x, [DetDataSample(metainfo=meta) for _ in x])
    for g, r in zip(got, ref):
        g, r = g.pred_instances, r.pred_instances
        assert len(g) > 0 and len(r) > 0
        assert int(g.labels[0]) == int(r.labels[0])
        assert abs(float(g.scores[0]) - float(r.scores[0])) < 0.05
    with pytest.raises(UserError, match='only predicts'):
        model(x, None, mode='loss')
    with pytest.raises(UserError, match='ONNX model not found'):
        MODELS.build(dict(type='mmzsq.ONNXRuntimeDetector',
                          detector=student, onnx_file=path + '.missing'))


@needs_coco_tiny
def test_fold_keeps_learned_codes(w8a8):
    from mmzsq.deployment import QDQConv2d, fold_student
    alg, x, _ = w8a8
    student = alg.architecture
    deploy = fold_student(student, lambda m: m._forward(x[:1]))
    n = 0
    for name, m in deploy.named_modules():
        if not isinstance(m, QDQConv2d):
            continue
        s = student.get_submodule(name)
        wq = s.weight_fake_quant
        step = wq.scale.detach().abs() + wq.eps
        codes = (s.weight.detach() / step).clamp(-128, 127).round()
        assert torch.equal(m.w_codes.abs(), codes.abs()), name
        n += 1
    assert n == 56


@needs_coco_tiny
def test_w4a4_exported_in_int8_with_clipped_range(yolov5n_mmyolo_ckpt,
                                                  tmp_path):
    import onnx

    from mmzsq.deployment import fold_student
    from mmzsq.deployment import ort_runner as ortr
    from mmzsq.deployment.export import export_onnx
    x = _images()
    student = _student(W4A4, yolov5n_mmyolo_ckpt, x).architecture
    deploy = fold_student(student, lambda m: m._forward(x[:1]))
    path = str(tmp_path / 'w4a4.onnx')
    export_onnx(deploy, path, (RES, RES))
    m = onnx.load(path)
    codes = [onnx.numpy_helper.to_array(i) for i in m.graph.initializer
             if i.data_type == 3]
    assert len(codes) == 56
    assert max(int(np.abs(c).max()) for c in codes) <= 8  # 4-bit codes
    # activations clipped to [-8, 7]*s (identical ones merged by torch)
    assert 52 <= ortr.count_ops(path)['Clip'] <= 56
    got = ortr.run(ortr.make_session(path, 1), x)
    with torch.no_grad():
        ref = _flat(student._forward(x))
    _within_floor(ref, got, _noise_floor(student._forward, x))


def _export_cli(args):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'export_onnx', 'tools/deployment/export_onnx.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit) as e:
        mod.main(args)
    return str(e.value.code)


def test_export_refuses_float_checkpoint(yolov5n_mmyolo_ckpt, tmp_path):
    msg = _export_cli([W8A8, yolov5n_mmyolo_ckpt, '--out',
                       str(tmp_path / 'x.onnx')])
    assert msg.startswith('error: ') and 'float checkpoint' in msg
    assert '\n' not in msg and 'tools/train.py' in msg


def test_export_refuses_float_config(yolov5n_mmyolo_ckpt, tmp_path):
    msg = _export_cli(['configs/yolov5/yolov5_n-v61_fp_coco.py',
                       yolov5n_mmyolo_ckpt, '--out', str(tmp_path / 'x.onnx')])
    assert msg.startswith('error: ') and 'float detector' in msg


@needs_coco_tiny
def test_export_refuses_bit_width_mismatch(w8a8, tmp_path):
    _, _, ckpt = w8a8
    msg = _export_cli([W4A4, ckpt, '--out', str(tmp_path / 'x.onnx')])
    assert msg.startswith('error: ') and '8 bits' in msg and '4 bits' in msg


def test_check_exportable_refuses_lsq_plus_and_uninitialised():
    import torch.nn as nn

    from mmzsq.deployment.fold import check_exportable
    from mmzsq.models.quantizers import EagerLSQQuantizer
    from mmzsq.utils.cli import UserError

    def net():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    with pytest.raises(UserError, match='never initialised'):
        check_exportable(EagerLSQQuantizer().prepare(net()))
    m = EagerLSQQuantizer(a_lsq_plus=True).prepare(net())
    m(torch.rand(1, 3, 8, 8))
    with pytest.raises(UserError, match='LSQ\\+'):
        check_exportable(m)
    with pytest.raises(UserError, match='no quantized layers'):
        check_exportable(net())


def _qdq_graph():
    """x -> Q/DQ -> SiLU (Sigmoid*x) = m; MaxPool(m) = p; Concat(m, p) ->
    student Q (0.04); r = m + a (no grid of its own); r + m -> student Q
    (0.1).  Returns the model and its float range input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def c(name, v, dt):
        return numpy_helper.from_array(np.array(v, dt), name)

    inits = [c('s_in', 0.05, np.float32), c('s_c', 0.04, np.float32),
             c('s_y', 0.1, np.float32), c('z', 128, np.uint8)]
    N = helper.make_node
    nodes = [
        N('QuantizeLinear', ['x', 's_in', 'z'], ['xq']),
        N('DequantizeLinear', ['xq', 's_in', 'z'], ['a']),
        N('Sigmoid', ['a'], ['sg']),
        N('Mul', ['a', 'sg'], ['m']),
        N('MaxPool', ['m'], ['p'], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        N('Concat', ['m', 'p'], ['c'], axis=1),
        N('QuantizeLinear', ['c', 's_c', 'z'], ['cq']),
        N('DequantizeLinear', ['cq', 's_c', 'z'], ['y1']),
        N('Add', ['m', 'a'], ['r']),
        N('Add', ['r', 'm'], ['r3']),
        N('QuantizeLinear', ['r3', 's_y', 'z'], ['r3q']),
        N('DequantizeLinear', ['r3q', 's_y', 'z'], ['y2'])]
    shape = [1, 4, 8, 8]
    g = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                   shape)],
        [helper.make_tensor_value_info('y1', TensorProto.FLOAT,
                                       [1, 8, 8, 8]),
         helper.make_tensor_value_info('y2', TensorProto.FLOAT, shape)],
        inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])
    onnx.checker.check_model(m)
    return m


def test_int8_activations_grids_and_kernels(tmp_path):
    import onnx

    from mmzsq.deployment import ort_runner as ortr
    from mmzsq.deployment.int8_activations import (ort_min_max,
                                                   quantize_activations)
    m = _qdq_graph()
    xs = [np.random.RandomState(i).uniform(-6, 6, (1, 4, 8, 8)).astype(
        np.float32) for i in range(3)]
    before = str(tmp_path / 'before.onnx')
    onnx.save(m, before)
    stats = quantize_activations(m, ort_min_max(m, xs))
    onnx.checker.check_model(m)
    # {m, p, c} share the Concat's student grid (MaxPool ties in and out,
    # p and c feed the Concat only) and r3 reuses its student Q: both
    # student Qs replaced, no re-quantization; r alone is calibrated
    assert stats == dict(int8_ops=6, reused_student_grid=2, calibrated=1,
                         requantized=0), stats
    produced = {o for n in m.graph.node for o in n.input} | {'y1', 'y2'}
    assert all(n.output[0] in produced for n in m.graph.node), \
        'a node nobody reads'
    grids = {n.input[0]: n for n in m.graph.node
             if n.op_type == 'QuantizeLinear'}
    for t in ('m', 'p', 'c'):
        assert grids[t].input[1] == grids['c'].input[1]
    after = str(tmp_path / 'after.onnx')
    onnx.save(m, after)
    opt = str(tmp_path / 'opt.onnx')
    sess = ortr.make_session(after, 1, opt)
    ops = ortr.count_ops(opt)
    for op in ('QLinearSigmoid', 'QLinearMul', 'QLinearAdd',
               'QLinearConcat'):
        assert ops.get(op, 0) >= 1, (op, ops)
    assert 'Sigmoid' not in ops and 'Mul' not in ops, ops
    ref = ortr.make_session(before, 1)
    for x in xs:  # on the student grids: at most a code or two apart
        (y1, y2), (r1, r2) = ortr.run(sess, x), ortr.run(ref, x)
        assert np.abs(y1 - r1).max() <= 0.04 + 1e-6
        assert np.abs(y2 - r2).max() <= 2 * 0.1 + 1e-6
        assert np.abs(y2 - r2).mean() < 0.05


# --------------------------------------------------------------------------
# Two-stage (Mask R-CNN): three graphs, RoI stage in Python (mmdet's code).
#
# The student: configs/zsq/mask-rcnn_r50_fpn_w8a8.py shrunk by
# tests/data/qat_configs.py::tiny_two_stage (R18-style, 16-channel FPN, 3
# classes), randomly initialised, LSQ step sizes from one forward on
# random 128 px images (no ../shared data).  ``rpn_cls``/``fc_cls``/
# ``fc_reg`` get a larger random init so that scores spread (mmdet's 0.01
# std gives every box the same score, which makes any ranking a tie).
#
# Tolerances ORT vs PyTorch (same quantization in both): the noise floor
# of the YOLO tests (see the top of this file), for
# * graph 1 (backbone + neck + RPN head, 28 quantized convs) with n ~ N(0,
#   4e-3) in mmdet's normalised input space (std 58: a quarter of one grey
#   level, as 1e-3 in [0, 1]);
# * the head graphs, fed the SAME RoI features as PyTorch's heads, with n ~
#   N(0, (4e-3 std(features))^2).  Even on identical inputs they differ:
#   onnxruntime's QuantizeLinear computes x/s where torch's fake_quantize
#   computes x*(1/s), and a conv output lying on a rounding tie (measured:
#   0.2% of the first mask conv's calibrated uint8 outputs) flips by one
#   code; four 3x3 convs + the deconv spread each flip (measured, int8 mask
#   head: 28% of the logits differ, mean |error| 0.4% of mean |logit|,
#   noise floor 3.5%);
# * end to end (RPN proposals -> RoIAlign -> heads -> NMS -> masks): a
#   flipped code can reorder near-equal scores, so ranks are not compared;
#   each of PyTorch's top-10 detections per image must have an ORT
#   detection of the same class with box IoU >= 0.9, |score diff| <= 0.02
#   and mask IoU >= 0.8.
# FP32 export (no rounding): 1e-3 (graph 1) / 1e-4 (heads) relative, IoU
# >= 0.99, score 1e-3, mask IoU 0.95.
# --------------------------------------------------------------------------
MASK_RCNN = 'configs/zsq/mask-rcnn_r50_fpn_w8a8.py'
TS_RES = 128


def _tiny_mask_rcnn_cfg():
    from mmengine.config import Config

    from tests.data.qat_configs import tiny_two_stage
    cfg = Config.fromfile(MASK_RCNN)
    cfg.model.init_checkpoint = None
    cfg.model.teacher_checkpoint = None
    tiny_two_stage(cfg.model.architecture)
    return cfg


def _mask_rcnn_images(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(n, 3, TS_RES, TS_RES, generator=g) * 255
    mean = torch.tensor([123.675, 116.28, 103.53]).reshape(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).reshape(1, 3, 1, 1)
    return (img - mean) / std


@pytest.fixture(scope='module')
def mask_rcnn():
    from mmengine.registry import MODELS, init_default_scope

    from mmzsq.deployment.two_stage import forward_once
    cfg = _tiny_mask_rcnn_cfg()
    init_default_scope('mmdet')
    torch.manual_seed(0)
    alg = MODELS.build(cfg.model)
    alg.init_weights()
    alg.eval()
    student = alg.architecture
    with torch.no_grad():
        for n, std in (('rpn_head.rpn_cls', 0.3),
                       ('roi_head.bbox_head.fc_cls', 0.3),
                       ('roi_head.bbox_head.fc_reg', 0.05)):
            student.get_submodule(n).weight.normal_(0, std)
        x = _mask_rcnn_images()
        forward_once(student, x)  # LSQ step-size init (every RoI head too)
    return cfg, alg, x


def _float_detector(cfg):
    from mmengine.registry import MODELS
    return MODELS.build(cfg.model.architecture).eval()


def _ts_flat(det, x):
    from mmzsq.deployment.two_stage import FeaturesAndRPN
    with torch.no_grad():
        return list(FeaturesAndRPN(det)(x))


def _ts_noise_floor(det, x):
    g = torch.Generator().manual_seed(0)
    a = _ts_flat(det, x)
    b = _ts_flat(det, x + 4e-3 * torch.randn(x.shape, generator=g))
    return [float((u - v).abs().mean()) for u, v in zip(a, b)]


def _roi_feats(det, x):
    """RoI features of ``det``'s own proposals: bbox (all), mask (100)."""
    from mmdet.structures.bbox import bbox2roi

    from mmzsq.deployment.two_stage import meta_samples
    rh = det.roi_head
    with torch.no_grad():
        f = det.extract_feat(x)
        props = det.rpn_head.predict(f, meta_samples(x), rescale=False)
        rois = bbox2roi([p.bboxes for p in props])
        ex_b, ex_m = rh.bbox_roi_extractor, rh.mask_roi_extractor
        return (ex_b(f[:ex_b.num_inputs], rois),
                ex_m(f[:ex_m.num_inputs], rois[:100]))


def _runner_raw(runner, x):
    feats, rpn = runner.raw(x)
    return [t.numpy() for t in feats + [t for g in rpn for t in g]]


def _outs(o):
    return list(o) if isinstance(o, (list, tuple)) else [o]


def _heads_close(det, runner, x, rel=None):
    """ORT head graphs vs ``det``'s heads on the same RoI features: within
    the noise floor (``rel=None``) or a relative tolerance."""
    g = torch.Generator().manual_seed(0)
    feats = _roi_feats(det, x)
    assert len(feats[0]) > 100 and len(feats[1]) == 100
    for role, f in zip(('bbox_head', 'mask_head'), feats):
        head = getattr(det.roi_head, role)
        n = 4e-3 * float(f.std()) * torch.randn(f.shape, generator=g)
        with torch.no_grad():
            ref, noisy = _outs(head(f)), _outs(head(f + n))
        got = [t.numpy() for t in _outs(runner.heads[role](f))]
        assert [tuple(r.shape) for r in ref] == [g.shape for g in got]
        if rel is None:
            _within_floor(ref, got, [float((u - v).abs().mean())
                                     for u, v in zip(ref, noisy)])
        else:
            assert _rel_err(ref, got) < rel, role


def _mask_iou(a, b):
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def _top_detections_match(ref, got, k=10, iou=0.9, score_tol=0.02,
                          mask_iou=0.8):
    from mmdet.structures.bbox import bbox_overlaps
    for r, g in zip(ref, got):
        r, g = r.pred_instances, g.pred_instances
        assert len(r) >= k and len(g) >= k, (len(r), len(g))
        ov = bbox_overlaps(r.bboxes[:k], g.bboxes)
        ov = ov * (r.labels[:k, None] == g.labels[None]).float()
        best, j = ov.max(1)
        assert float(best.min()) >= iou, best
        assert float((r.scores[:k] - g.scores[j]).abs().max()) <= score_tol
        if 'masks' in r:
            ious = [_mask_iou(r.masks[i], g.masks[j[i]]) for i in range(k)]
            assert min(ious) >= mask_iou, ious


def _ts_predict(det, x):
    from mmzsq.deployment.two_stage import meta_samples
    with torch.no_grad():
        return det.predict(x, meta_samples(x))


def test_mask_rcnn_qdq_export_and_onnxruntime(mask_rcnn, tmp_path):
    import onnx

    from mmzsq.deployment import fold_student
    from mmzsq.deployment.calibrate import calibrate_outputs
    from mmzsq.deployment.qdq_layers import _QDQMixin
    from mmzsq.deployment.two_stage import (TwoStageRunner, export_two_stage,
                                            forward_once, meta_samples,
                                            two_stage_info)
    cfg, alg, x = mask_rcnn
    student = alg.architecture
    deploy = fold_student(student, lambda m: forward_once(m, x[:1]))
    qdq = {n: m for n, m in deploy.named_modules()
           if isinstance(m, _QDQMixin)}
    # 28 convs of backbone/neck/RPN, 2 shared FCs, 4 mask convs
    assert len(qdq) == 34
    assert sum('roi_head.bbox_head' in n for n in qdq) == 2
    assert sum('roi_head.mask_head' in n for n in qdq) == 4
    fdet = _float_detector(cfg)

    # 1. exact student semantics (no output quant): ORT == fake-quant
    paths = export_two_stage(deploy, str(tmp_path / 'exact.onnx'),
                             (TS_RES, TS_RES))
    assert sorted(paths) == ['bbox_head', 'features', 'mask_head']
    for role, path in paths.items():
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    info = two_stage_info(paths['features'])
    assert info['groups'] == [5, 5, 5] and info['paths'] == paths
    runner = TwoStageRunner(fdet, paths['features'], 1, str(tmp_path))
    ref = _ts_flat(student, x)
    _within_floor(ref, _runner_raw(runner, x), _ts_noise_floor(student, x))
    _heads_close(student, runner, x)
    _top_detections_match(_ts_predict(student, x),
                          runner.predict(x, meta_samples(x)))
    # N = 0 RoIs: shapes as PyTorch's, no session run
    for role, shape in (('bbox_head', (0, 16, 7, 7)),
                        ('mask_head', (0, 16, 14, 14))):
        empty = torch.zeros(shape)
        with torch.no_grad():
            r = getattr(student.roi_head, role)(empty)
        r = list(r) if isinstance(r, tuple) else [r]
        g = runner.heads[role](empty)
        g = list(g) if isinstance(g, tuple) else [g]
        assert [t.shape for t in r] == [t.shape for t in g]

    # 2. deploy export: output quant calibrated by a full predict, which
    # reaches the RoI heads -> int8 kernels in all three graphs
    n = calibrate_outputs(
        deploy, lambda b: deploy.predict(b, meta_samples(b)), [x])
    assert n == len(qdq)
    assert all(m.out_scale is not None for m in qdq.values())
    paths = export_two_stage(deploy, str(tmp_path / 'int8.onnx'),
                             (TS_RES, TS_RES))
    runner = TwoStageRunner(fdet, paths['features'], 1, str(tmp_path))
    k = runner.kernels()
    assert k['features']['QLinearConv'] >= 25, k
    assert k['mask_head']['QLinearConv'] == 4, k
    int8_fc = sum(k['bbox_head'][op] for op in (
        'QGemm', 'QLinearMatMul', 'MatMulInteger', 'MatMulIntegerToFloat'))
    assert int8_fc == 2, k
    ref = _ts_flat(deploy, x)
    _within_floor(ref, _runner_raw(runner, x), _ts_noise_floor(deploy, x))
    _heads_close(deploy, runner, x)
    _top_detections_match(_ts_predict(deploy, x),
                          runner.predict(x, meta_samples(x)))


def test_mask_rcnn_float_export_matches_pytorch(mask_rcnn, tmp_path):
    from mmzsq.deployment import fold_student
    from mmzsq.deployment import ort_runner as ortr
    from mmzsq.deployment.two_stage import (TwoStageRunner, export_two_stage,
                                            forward_once, meta_samples)
    from mmzsq.models.fake_quants import LSQFakeQuantize
    cfg, alg, x = mask_rcnn
    student = alg.architecture
    deploy = fold_student(student, lambda m: forward_once(m, x[:1]))
    for q in deploy.modules():
        if hasattr(q, 'quantize'):
            q.quantize = False
    paths = export_two_stage(deploy, str(tmp_path / 'fp32.onnx'),
                             (TS_RES, TS_RES))
    for path in paths.values():
        assert ortr.count_ops(path).get('QuantizeLinear', 0) == 0
    runner = TwoStageRunner(_float_detector(cfg), paths['features'], 1)
    x2 = _mask_rcnn_images(seed=1)  # not the step-size init images
    # reference: the student with weight codes, activations unquantized
    fqs = [fq for n, fq in student.named_modules()
           if isinstance(fq, LSQFakeQuantize)
           and n.endswith('input_fake_quant')]
    for fq in fqs:
        fq.fake_quant_enabled.fill_(0)
    try:
        ref = _ts_flat(student, x2)
        _heads_close(student, runner, x2, 1e-4)
        ref_pred = _ts_predict(student, x2)
    finally:
        for fq in fqs:
            fq.fake_quant_enabled.fill_(1)
    assert _rel_err(ref, _runner_raw(runner, x2)) < 1e-3
    # dynamic batch, H, W (not multiples of 32 either)
    x3 = torch.randn(3, 3, 100, 164,
                     generator=torch.Generator().manual_seed(3))
    ref3 = _ts_flat(deploy, x3)
    assert _rel_err(ref3, _runner_raw(runner, x3)) < 1e-3
    _top_detections_match(ref_pred, runner.predict(x2, meta_samples(x2)),
                          iou=0.99, score_tol=1e-3, mask_iou=0.95)


def test_two_stage_bbox_only_and_unsupported(mask_rcnn, tmp_path):
    import copy

    from mmdet.models.roi_heads import StandardRoIHead

    from mmzsq.deployment import fold_student
    from mmzsq.deployment.export import RawHeadOutputs
    from mmzsq.deployment.two_stage import (TwoStageRunner, export_two_stage,
                                            forward_once, meta_samples)
    from mmzsq.utils.cli import UserError
    cfg, alg, x = mask_rcnn
    deploy = fold_student(alg.architecture,
                          lambda m: forward_once(m, x[:1]))
    with pytest.raises(UserError, match='export_two_stage'):
        RawHeadOutputs(deploy)
    # a Faster R-CNN (no mask head): two graphs, boxes only
    faster = copy.deepcopy(deploy)
    faster.roi_head.mask_head = None
    paths = export_two_stage(faster, str(tmp_path / 'faster.onnx'),
                             (TS_RES, TS_RES))
    assert sorted(paths) == ['bbox_head', 'features']
    fdet = _float_detector(cfg)
    with pytest.raises(UserError, match='without a mask head'):
        TwoStageRunner(fdet, paths['features'])
    fdet.roi_head.mask_head = None
    got = TwoStageRunner(fdet, paths['features']).predict(
        x, meta_samples(x))
    assert 'masks' not in got[0].pred_instances
    _top_detections_match(_ts_predict(faster, x), got)
    # RoI heads the three graphs cannot express
    other = copy.deepcopy(faster)
    other.roi_head.__class__ = type('CascadeRoIHead', (StandardRoIHead, ),
                                    {})
    with pytest.raises(UserError, match='CascadeRoIHead: only '
                       'StandardRoIHead'):
        export_two_stage(other, str(tmp_path / 'x.onnx'), (TS_RES, TS_RES))
    # Swin: the legacy exporter bakes batch and H, W into its reshapes
    from mmengine.registry import MODELS
    swin = copy.deepcopy(faster)
    swin.backbone = MODELS.build(dict(
        type='SwinTransformer', embed_dims=16, depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1], window_size=4))
    with pytest.raises(UserError, match='SwinTransformer backbone: .* '
                       'CNN-backbone student'):
        export_two_stage(swin, str(tmp_path / 'x.onnx'), (TS_RES, TS_RES))


def _fake_coco(root, student, n=2):
    """``n`` random 128 px images; their annotations = the top-5 detections
    of the PyTorch ``student`` (rectangle masks), so mAP is not ~0."""
    import json
    import os

    import mmcv

    from mmzsq.deployment.two_stage import meta_samples
    os.makedirs(osp.join(root, 'val2017'))
    os.makedirs(osp.join(root, 'annotations'))
    g = torch.Generator().manual_seed(2)
    imgs = (torch.rand(n, TS_RES, TS_RES, 3, generator=g) * 255).byte()
    images, anns = [], []
    for i, img in enumerate(imgs):
        name = f'{i:012d}.png'
        mmcv.imwrite(img.numpy()[..., ::-1], osp.join(root, 'val2017', name))
        images.append(dict(id=i + 1, file_name=name, height=TS_RES,
                           width=TS_RES))
        x = (img.permute(2, 0, 1)[None].float() - torch.tensor(
            [123.675, 116.28, 103.53]).reshape(1, 3, 1, 1)) / torch.tensor(
                [58.395, 57.12, 57.375]).reshape(1, 3, 1, 1)
        with torch.no_grad():
            det = student.predict(x, meta_samples(x))[0].pred_instances
        for (x1, y1, x2, y2), label in zip(det.bboxes[:5].tolist(),
                                           det.labels[:5].tolist()):
            anns.append(dict(
                id=len(anns) + 1, image_id=i + 1, category_id=label + 1,
                bbox=[x1, y1, x2 - x1, y2 - y1], iscrowd=0,
                area=(x2 - x1) * (y2 - y1),
                segmentation=[[x1, y1, x2, y1, x2, y2, x1, y2]]))
    cats = [dict(id=i + 1, name=c) for i, c in enumerate('abc')]
    ann_file = osp.join(root, 'annotations', 'instances_val2017.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    return ann_file


def _run_tool(name, args, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        name, f'tools/deployment/{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    capsys.readouterr()
    mod.main(args)
    return capsys.readouterr().out


def test_mask_rcnn_export_and_ort_eval_tools(mask_rcnn, tmp_path, capsys):
    """export_onnx.py (int8 calibrated on the test split, --float) and
    ort_eval.py (bbox + segm mAP, kernels per graph, latency) on a two-stage
    config."""
    import copy
    import json
    cfg, alg, _ = mask_rcnn
    cfg = copy.deepcopy(cfg)
    root = str(tmp_path / 'coco')
    ann_file = _fake_coco(root, alg.architecture)
    ds = cfg.test_dataloader.dataset
    ds.update(data_root=root + '/', metainfo=dict(classes=('a', 'b', 'c')))
    ds.pipeline[1].scale = (TS_RES, TS_RES)  # Resize
    cfg.test_dataloader.update(batch_size=2, num_workers=0,
                               persistent_workers=False)
    cfg.test_evaluator.ann_file = ann_file
    config = str(tmp_path / 'tiny_mask_rcnn.py')
    cfg.dump(config)
    ckpt = str(tmp_path / 'student.pth')
    torch.save({'state_dict': alg.state_dict()}, ckpt)
    size = ['--input-size', str(TS_RES), str(TS_RES)]
    int8, fp32, exact = (str(tmp_path / f'{k}.onnx')
                         for k in ('int8', 'fp32', 'exact'))
    out = _run_tool('export_onnx', [config, ckpt, '--out', int8, *size,
                                    '--calib-split', 'test',
                                    '--calib-batches', '1'], capsys)
    assert 'QDQ int8 ONNX, 3 graphs (34 quantized layers' in out
    for f in ('int8.onnx', 'int8.bbox_head.onnx', 'int8.mask_head.onnx'):
        assert str(tmp_path / f) in out and osp.isfile(tmp_path / f)
    out = _run_tool('export_onnx', [config, ckpt, '--out', fp32, *size,
                                    '--float'], capsys)
    assert 'FP32 ONNX, 3 graphs' in out
    _run_tool('export_onnx', [config, ckpt, '--out', exact, *size,
                              '--no-output-quant'], capsys)
    # mAP: the exact export (the student's quantizers only) scores as the
    # PyTorch student; the output-quantized one reorders near-tied scores
    # of this random model (the annotations are PyTorch's top-5), so only
    # its kernels and latency are checked
    out = str(tmp_path / 'res.json')
    _run_tool('ort_eval', [config, exact, '--checkpoint', ckpt, '--runs',
                           '1', '--rounds', '1', '--latency-size',
                           str(TS_RES), '--work-dir', str(tmp_path / 'ort'),
                           '--out', out], capsys)
    with open(out) as f:
        res = json.load(f)
    ref, got = res['pytorch_fake_quant'], res['int8_onnxruntime']
    assert ref['bbox_mAP'] > 0.9 and ref['segm_mAP'] > 0.5, ref
    assert sorted(got) == ['bbox_mAP', 'bbox_mAP_50', 'segm_mAP',
                           'segm_mAP_50']
    for k in got:
        assert abs(got[k] - ref[k]) <= 0.02, (k, got, ref)
    _run_tool('ort_eval', [config, int8, '--fp32', fp32, '--no-map',
                           '--runs', '2', '--rounds', '1', '--latency-size',
                           str(TS_RES), '--work-dir', str(tmp_path / 'ort'),
                           '--out', out], capsys)
    with open(out) as f:
        res = json.load(f)
    assert res['int8_kernels']['mask_head']['QLinearConv'] == 4
    assert res['fp32_kernels']['features']['QLinearConv'] == 0
    assert set(res['latency_ms_rounds'][0]) == {'int8', 'fp32'}
    assert set(res['end_to_end_ms_rounds'][0]) == {'int8', 'fp32'}


def test_yolo11_export_with_int8_activations(tmp_path):
    """A random YOLO11-s W8A8 student (YOLOv8 head: DFL, C2PSA attention)
    through the default export: int8 convs and SiLUs, raw outputs within 2x
    the noise floor of the PyTorch deploy model."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from mmzsq.deployment import fold_student
    from mmzsq.deployment import ort_runner as ortr
    from mmzsq.deployment.calibrate import calibrate_outputs
    from mmzsq.deployment.export import export_onnx
    cfg = Config.fromfile('configs/zsq/yolo11_s_w8a8.py')
    cfg.model.init_checkpoint = cfg.model.teacher_checkpoint = None
    init_default_scope('mmyolo')
    torch.manual_seed(0)
    alg = MODELS.build(cfg.model)
    alg.init_weights()
    alg.eval()
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    # a random YOLO11 fades to zero activations by P5 and its last 1x1s
    # start near zero: BN statistics of this batch (momentum 1) and spread
    # last layers make the outputs depend on the input (else any export
    # "matches")
    for n, m in alg.architecture.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
        elif n.endswith('.2') and isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, 0, 0.1)
    alg.architecture.train()
    with torch.no_grad():
        alg.architecture._forward(x)  # BN stats + LSQ step-size init
    alg.eval()
    deploy = fold_student(alg.architecture, lambda m: m._forward(x[:1]))
    calibrate_outputs(deploy, lambda b: deploy._forward(b), [x])
    path = str(tmp_path / 'yolo11.onnx')
    assert export_onnx(deploy, path, (160, 160), int8_activations=[x]) == \
        [3, 3]
    opt = str(tmp_path / 'opt.onnx')
    sess = ortr.make_session(path, 1, opt)
    ops = ortr.count_ops(opt)
    assert ops.get('QLinearConv', 0) >= 70, ops
    assert ops.get('QLinearMul', 0) >= 40, ops

    def fwd(inp):
        return deploy._forward(inp)
    with torch.no_grad():
        ref = _flat(fwd(x))
    _within_floor(ref, ortr.run(sess, x), _noise_floor(fwd, x))
