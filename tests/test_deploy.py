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

from .conftest import COCO_TINY, needs_coco_tiny

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
