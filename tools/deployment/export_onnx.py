"""Export the quantized student of an mmzsq checkpoint to ONNX (QDQ).

    python tools/deployment/export_onnx.py CONFIG CKPT --out model.onnx

What the graph contains:

* BN folded into the convs, keeping the learned integer weight codes: the
  folded weight is the same codes with per-channel step ``s_w*|gamma/sigma|``
  (see mmzsq/deployment/fold.py for why not re-quantize after folding);
* ``QuantizeLinear``/``DequantizeLinear`` with the learned LSQ step sizes:
  weights int8, zero-point 0 (symmetric), per-channel (BN folding makes them
  per-channel even for a per-tensor student), int8 initializers; biases
  int32; activations uint8 (a signed symmetric grid as zero-point 128: the
  same codes shifted, for onnxruntime's u8 x s8 x86 kernels); bit-widths
  < 8 in the 8-bit containers with the activation clipped to the b-bit
  range (``Clip`` before ``QuantizeLinear``), weights already b-bit codes;
* by default an extra uint8 quantization of each quantized conv's output
  (min/max over ``--calib-batches`` batches of the config's
  ``--calib-split`` dataloader): onnxruntime needs ``DQ->Conv->Q`` to run an
  int8 ``QLinearConv``; ``--no-output-quant`` keeps exactly the student's
  quantizers (float convs in onnxruntime, no int8 speed-up);
* by default also int8 grids on the tensors between quantized convs (SiLU,
  residual Add, Concat, MaxPool, Resize; the student's own step size where
  the tensor feeds a quantized conv, else calibrated like the conv outputs),
  so onnxruntime runs them as int8 kernels too (see
  mmzsq/deployment/int8_activations.py); ``--no-int8-activations`` keeps
  them float;
* ``--float``: the same folded network without any QDQ (FP32 baseline);
* raw head outputs only (no decoding / NMS); opset 17; dynamic batch, H, W.

Two-stage detectors (Faster / Mask R-CNN) give three files from ``--out
model.onnx``: ``model.onnx`` (image -> neck features + RPN raw outputs),
``model.bbox_head.onnx`` and ``model.mask_head.onnx`` (RoI features -> raw
head outputs); proposals, RoIAlign, NMS and mask pasting stay in Python
(mmdet's own code, see mmzsq/deployment/two_stage.py).  The output-quant
calibration runs the folded detector's full ``predict`` (RoI heads on the
proposals / detections they see at test time).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from tools._common import config_parser, import_mmzsq  # noqa: E402

import_mmzsq()

import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from mmzsq.utils.cli import exit_on_user_error  # noqa: E402


def parse_args(argv=None):
    p = config_parser('mmzsq: export ONNX (QDQ)',
                      'the configs/zsq config of the checkpoint')
    p.add_argument('checkpoint', help='quantized checkpoint (tools/train.py)')
    p.add_argument('--out', required=True, help='output .onnx path')
    p.add_argument('--input-size', type=int, nargs=2, default=[640, 640],
                   metavar=('H', 'W'), help='export example size')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--float', action='store_true',
                   help='export the folded model without QDQ (FP32)')
    p.add_argument('--no-output-quant', action='store_true',
                   help="student's quantizers only (no QLinearConv fusion)")
    p.add_argument('--no-int8-activations', action='store_true',
                   help='keep SiLU/Add/Concat/MaxPool/Resize between the '
                   'int8 convs in float')
    p.add_argument('--calib-split', default='train',
                   choices=['train', 'val', 'test'],
                   help='dataloader for the output-quant calibration '
                   '(train = the zero-shot synthetic set of zsq configs)')
    p.add_argument('--calib-batches', type=int, default=4)
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the calibration batches\' sampling (the '
                   'calibrated grids, hence mAP, depend on which images)')
    return p.parse_args(argv)


def fold(alg, args):
    """(deploy model, its QDQ layers): the student with BN folded into
    QDQ layers (quantization off with ``--float``)."""
    from mmzsq.deployment import fold_student
    from mmzsq.deployment import two_stage as ts
    from mmzsq.deployment.export import check_traceable
    from mmzsq.deployment.qdq_layers import _QDQMixin
    student = alg.architecture
    check_traceable(student)  # before folding / calibrating
    if ts.is_two_stage(student):
        ts.check_two_stage(student)
    x = torch.zeros(1, 3, *args.input_size)
    deploy = fold_student(student, lambda m: ts.forward_once(m, x))
    qdq = [(n, m) for n, m in deploy.named_modules()
           if isinstance(m, _QDQMixin)]
    for _, m in qdq:
        m.quantize = not args.float
    return deploy, qdq


def calibrate(cfg, student, deploy, qdq, args):
    """Calibrate the conv-output quantizers on ``--calib-batches`` batches
    of the ``--calib-split`` dataloader; returns those batches' inputs (for
    the int8-activation calibration) or None."""
    from mmengine.runner import set_random_seed

    from mmzsq.deployment import two_stage as ts
    from mmzsq.deployment.calibrate import calibrate_outputs
    from mmzsq.deployment.data import build_loader, preprocessed_batches
    logger = MMLogger.get_instance('mmzsq')
    set_random_seed(args.seed)
    loader = build_loader(cfg, args.calib_split)
    batches = list(preprocessed_batches(student, loader, args.calib_batches))
    if ts.is_two_stage(student):  # full predict: RoI heads on test-time RoIs

        def forward(b):
            return deploy.predict(b['inputs'], b['data_samples'])
    else:

        def forward(b):
            return deploy._forward(b['inputs'])
    n = calibrate_outputs(deploy, forward, batches)
    logger.info(f'output quantization of {n} layers calibrated on '
                f'{len(batches)} {args.calib_split} batches')
    missed = [name for name, m in qdq if m.out_scale is None]
    if missed:
        logger.warning(
            f'{len(missed)} quantized layers saw no calibration data (e.g. '
            f'{missed[0]}: no detections?); their outputs stay float (no '
            'QLinearConv there)')
    return None if args.no_int8_activations else [b['inputs']
                                                  for b in batches]


def export(deploy, args, calib, kind: str, layers: int) -> str:
    """Write the graph(s); returns what was written, for the user."""
    from mmzsq.deployment import two_stage as ts
    from mmzsq.deployment.export import export_onnx
    size, what = tuple(args.input_size), f'{layers} quantized layers'
    if ts.is_two_stage(deploy):
        paths = ts.export_two_stage(deploy, args.out, size, args.opset,
                                    int8_activations=calib)
        lines = [f'{kind} ONNX, {len(paths)} graphs ({what}, opset '
                 f'{args.opset}):']
        lines += [f'  {role}: {path}' for role, path in paths.items()]
        return '\n'.join(lines)
    groups = export_onnx(deploy, args.out, size, args.opset,
                         int8_activations=calib)
    return f'{kind} ONNX saved to {args.out} ({what}, outputs {groups}, ' \
        f'opset {args.opset})'


def main(argv=None):
    args = parse_args(argv)
    from mmzsq.deployment.export import load_quantized_algorithm
    with exit_on_user_error():
        cfg, alg = load_quantized_algorithm(args.config, args.checkpoint,
                                            args.cfg_options)
        deploy, qdq = fold(alg, args)
        calib = None
        if not args.float and not args.no_output_quant:
            calib = calibrate(cfg, alg.architecture, deploy, qdq, args)
        msg = export(deploy, args, calib,
                     'FP32' if args.float else 'QDQ int8', len(qdq))
    print(msg)


if __name__ == '__main__':
    main()
