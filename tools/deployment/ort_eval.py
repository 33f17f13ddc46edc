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
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
try:
    import mmzsq  # noqa: F401
except ImportError as e:  # pragma: no cover
    sys.exit(f'error: mmzsq is not importable ({e}); run `make install` '
             'in the mmzsq checkout, or `pip install -e .` there.')

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from mmzsq.utils.cli import UserError, exit_on_user_error  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='mmzsq: onnxruntime eval')
    p.add_argument('config', help='the config the model was exported from')
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
                   help='feed only the first N images (smoke tests: '
                   'CocoMetric still scores against every annotated image, '
                   'so the mAP is not that of the subset)')
    p.add_argument('--no-map', action='store_true', help='latency only')
    p.add_argument('--work-dir', default='work_dirs/ort_eval')
    p.add_argument('--out', help='write the results to this json file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def evaluate(cfg, predict_fn, max_images=None):
    """mAP through the config's test evaluator; ``predict_fn(batch)`` ->
    data samples with ``pred_instances``."""
    import itertools

    from mmengine.runner import Runner

    from mmzsq.deployment.data import build_loader
    loader = build_loader(cfg, 'test')
    evaluator = Runner.build_evaluator(None, cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    n = len(loader) if max_images is None else -(-max_images //
                                                 loader.batch_size)
    for batch in itertools.islice(loader, n):
        with torch.no_grad():
            samples = predict_fn(batch)
        evaluator.process(samples, batch)
    m = evaluator.evaluate(min(n * loader.batch_size, len(loader.dataset)))
    return {k.split('/')[-1]: v for k, v in m.items()
            if k.endswith(('bbox_mAP', 'bbox_mAP_50', 'segm_mAP',
                           'segm_mAP_50'))}


def main(argv=None):
    args = parse_args(argv)
    from mmengine.registry import MODELS, init_default_scope

    from mmzsq.deployment import ort_runner as ortr
    from mmzsq.deployment import two_stage as ts
    from mmzsq.deployment.export import output_groups
    with exit_on_user_error():
        for p in (args.onnx, args.fp32):
            if p and not osp.isfile(p):
                raise UserError(f'ONNX model not found: {p}; export it with '
                                'tools/deployment/export_onnx.py')
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        cfg.work_dir = args.work_dir
        os.makedirs(args.work_dir, exist_ok=True)
        init_default_scope(cfg.get('default_scope', 'mmyolo'))
        arch_cfg = cfg.model.get('architecture', cfg.model)
        detector = MODELS.build(arch_cfg).eval()  # head + preprocessor only
        models = {'int8': args.onnx}
        if args.fp32:
            models['fp32'] = args.fp32
        res = dict(threads=args.threads, latency_size=args.latency_size)
        sessions, runners, preds = {}, {}, {}
        for k, path in models.items():
            if ts.two_stage_info(path) is not None:
                r = runners[k] = ts.TwoStageRunner(detector, path,
                                                   args.threads,
                                                   args.work_dir)
                sessions[k] = r.sessions['features']
                res[f'{k}_kernels'] = r.kernels()
                preds[k] = r.predict
                continue
            if ts.is_two_stage(detector):
                raise UserError(f'{path} is a single-stage export but the '
                                'config builds a two-stage detector; pass '
                                'the config the model was exported from')
            opt = osp.join(args.work_dir, osp.basename(path).replace(
                '.onnx', '_ort_opt.onnx'))
            sessions[k] = ortr.make_session(path, args.threads, opt)
            res[f'{k}_kernels'] = ortr.int8_kernels(opt)

            def single(inputs, samples, s=sessions[k], g=output_groups(path)):
                return ortr.predict(s, g, detector.bbox_head, inputs,
                                    samples)
            preds[k] = single
        if not args.no_map:
            for k in models:

                def pred(batch, p=preds[k]):
                    d = detector.data_preprocessor(batch, False)
                    return p(d['inputs'], d['data_samples'])
                res[f'{k}_onnxruntime'] = evaluate(cfg, pred, args.max_images)
            if args.checkpoint:
                from mmzsq.deployment.export import load_quantized_algorithm
                _, alg = load_quantized_algorithm(args.config,
                                                  args.checkpoint,
                                                  args.cfg_options)
                res['pytorch_fake_quant'] = evaluate(
                    cfg, lambda b: alg.architecture.test_step(b),
                    args.max_images)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, args.latency_size, args.latency_size,
                       generator=g)
        rounds, e2e = [], []
        for _ in range(args.rounds):
            rounds.append({k: ortr.latency_ms(s, x, args.runs)['median']
                           for k, s in sessions.items()})
            if runners:
                e2e.append({k: ortr.timed_ms(
                    lambda r=r: r.predict(x, ts.meta_samples(x)),
                    args.runs)['median'] for k, r in runners.items()})
        res['latency_ms_rounds'] = rounds
        if runners:
            res['end_to_end_ms_rounds'] = e2e
        if 'fp32' in sessions and rounds:
            ratios = [r['int8'] / r['fp32'] for r in rounds]
            res['int8_over_fp32'] = dict(
                median=sorted(ratios)[len(ratios) // 2], min=min(ratios),
                max=max(ratios))
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
