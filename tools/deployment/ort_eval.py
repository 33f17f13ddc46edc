"""Evaluate an exported ONNX detector with onnxruntime (CPU EP).

    python tools/deployment/ort_eval.py CONFIG model_int8.onnx \
        [--fp32 model_fp32.onnx] [--checkpoint CKPT] [--threads 1]

* mAP / mAP50 on the config's test dataloader through its test evaluator
  (mmdet's CocoMetric), decoding + NMS by the head's ``predict_by_feat`` on
  the ONNX raw outputs; with ``--checkpoint`` the PyTorch fake-quant student
  is evaluated on the same batches for comparison;
* latency: batch 1, ``--latency-size`` px, fixed ``--threads``; median of
  ``--runs`` runs, repeated ``--rounds`` times alternating QDQ / FP32 (the
  spread of the round medians is reported: shared machines are noisy);
* int8 kernels: the onnxruntime-optimised graph is saved
  (``SessionOptions.optimized_model_filepath``) and its QLinearConv /
  ConvInteger / MatMulInteger... nodes are counted.

Two-stage exports (pass the first graph, ``model.onnx``; its
``model.bbox_head.onnx`` / ``model.mask_head.onnx`` are found beside it):
mmdet's ``rpn_head.predict_by_feat`` + ``roi_head.predict`` run in Python
with the head forwards in onnxruntime (mmzsq/deployment/two_stage.py);
mAP is bbox and, when the config's metric has it, segm; kernels are
counted per graph; ``latency_ms_rounds`` is graph 1 alone (backbone + neck
+ RPN head, the fixed-cost part) and ``end_to_end_ms_rounds`` the whole
predict (RPN proposals, RoIAlign, both heads, NMS, mask pasting) on the
same random image, whose RoI count the config's test_cfg sets (RPN
``max_per_img``) and whose detection count depends on the model.
"""
import copy
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from tools._common import (config_parser, import_mmzsq,  # noqa: E402
                           load_tool_config)

import_mmzsq()

import torch  # noqa: E402

from mmzsq.utils.cli import exit_on_user_error  # noqa: E402


def parse_args(argv=None):
    p = config_parser('mmzsq: onnxruntime eval',
                      'the config the model was exported from')
    p.add_argument('onnx', help='ONNX model (QDQ int8) to evaluate')
    p.add_argument('--fp32', help='FP32 ONNX of the same model (latency '
                   'baseline; also evaluated)')
    p.add_argument('--checkpoint', help='quantized checkpoint: also '
                   'evaluate the PyTorch fake-quant student')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--runs', type=int, default=20)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--latency-size', type=int, default=640)
    p.add_argument('--max-images', type=int, default=None,
                   help='evaluate only the first N images (smoke tests: '
                   'CocoMetric still scores against every annotated image, '
                   'so the mAP is not that of the subset)')
    p.add_argument('--no-map', action='store_true', help='latency only')
    p.add_argument('--work-dir', default='work_dirs/ort_eval')
    p.add_argument('--out', help='write the results to this json file')
    return p.parse_args(argv)


def evaluate(cfg, model, work_dir, name, max_images=None):
    """mAP of ``model`` (an ``ONNXRuntimeDetector`` or a PyTorch detector)
    by ``Runner.test``: the config's test dataloader and test evaluator
    (mmdet's CocoMetric); ``name``: the run's (one log, logger and
    visualizer each)."""
    from mmengine.runner import Runner

    from mmzsq.deployment.data import build_loader
    cfg = copy.deepcopy(cfg)
    if max_images is not None:
        cfg.test_dataloader.dataset.indices = max_images
    runner = Runner(
        model=model, work_dir=work_dir, test_cfg=dict(type='TestLoop'),
        test_dataloader=build_loader(cfg, 'test'),
        test_evaluator=cfg.test_evaluator, log_level='WARNING',
        default_scope=cfg.get('default_scope', 'mmyolo'),
        env_cfg=dict(cudnn_benchmark=False), experiment_name=name)
    m = runner.test()
    return {k.split('/')[-1]: v for k, v in m.items()
            if k.endswith(('bbox_mAP', 'bbox_mAP_50', 'segm_mAP',
                           'segm_mAP_50'))}


def build_models(cfg, args):
    """``ONNXRuntimeDetector`` s of ``--onnx`` (``int8``) and ``--fp32``
    around the config's detector (head + preprocessor only)."""
    import warnings

    from mmdet.apis import init_detector

    from mmzsq.deployment.ort_detector import ONNXRuntimeDetector
    det_cfg = copy.deepcopy(cfg)
    det_cfg.model = cfg.model.get('architecture', cfg.model)
    with warnings.catch_warnings():  # its weights are not used: no ckpt
        warnings.filterwarnings('ignore', 'checkpoint is None')
        detector = init_detector(det_cfg, device='cpu', cfg_options={})
    paths = dict(int8=args.onnx, fp32=args.fp32)
    return {k: ONNXRuntimeDetector(detector, path, args.threads,
                                   args.work_dir)
            for k, path in paths.items() if path}


def latency(models, args) -> dict:
    """Graph-1 (and, two-stage, end-to-end) median latencies of ``--rounds``
    rounds alternating the models, and int8 / FP32 ratios."""
    from mmzsq.deployment import ort_runner as ortr
    from mmzsq.deployment.two_stage import meta_samples
    x = torch.rand(1, 3, args.latency_size, args.latency_size,
                   generator=torch.Generator().manual_seed(0))
    two_stage = {k: m for k, m in models.items() if m.two_stage}
    rounds, e2e = [], []
    for _ in range(args.rounds):
        rounds.append({k: ortr.latency_ms(m.sessions['features'], x,
                                          args.runs)['median']
                       for k, m in models.items()})
        if two_stage:
            e2e.append({k: ortr.timed_ms(
                lambda m=m: m.runner.predict(x, meta_samples(x)),
                args.runs)['median'] for k, m in two_stage.items()})
    res = dict(latency_ms_rounds=rounds)
    if two_stage:
        res['end_to_end_ms_rounds'] = e2e
    if 'fp32' in models and rounds:
        ratios = sorted(r['int8'] / r['fp32'] for r in rounds)
        res['int8_over_fp32'] = dict(median=ratios[len(ratios) // 2],
                                     min=ratios[0], max=ratios[-1])
    return res


def main(argv=None):
    args = parse_args(argv)
    with exit_on_user_error():
        cfg = load_tool_config(args.config, args.cfg_options)
        cfg.work_dir = args.work_dir
        models = build_models(cfg, args)
        res = dict(threads=args.threads, latency_size=args.latency_size)
        res.update({f'{k}_kernels': m.kernels() for k, m in models.items()})
        if not args.no_map:
            for k, m in models.items():
                res[f'{k}_onnxruntime'] = evaluate(
                    cfg, m, args.work_dir, f'{k}_onnxruntime',
                    args.max_images)
            if args.checkpoint:
                from mmzsq.deployment.export import load_quantized_algorithm
                _, alg = load_quantized_algorithm(args.config,
                                                  args.checkpoint,
                                                  args.cfg_options)
                res['pytorch_fake_quant'] = evaluate(
                    cfg, alg.architecture, args.work_dir,
                    'pytorch_fake_quant', args.max_images)
        res.update(latency(models, args))
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
