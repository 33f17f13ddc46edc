"""Run an exported detector with onnxruntime (CPU EP).

Post-processing is the head's own ``predict_by_feat`` on the ONNX raw
outputs, so decoding and NMS are exactly mmyolo's / mmdet's.  Two-stage
exports (three graphs, RoI stage in Python): :mod:`.two_stage`.
"""
import collections
import statistics
import time
from typing import Dict, List, Optional

import numpy as np
import torch

INT8_OPS = ('QLinearConv', 'ConvInteger', 'MatMulInteger', 'QLinearMatMul',
            'MatMulIntegerToFloat', 'QGemm', 'DynamicQuantizeLinear')


def make_session(path: str, threads: int = 1,
                 optimized_path: Optional[str] = None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])


def count_ops(onnx_path: str) -> Dict[str, int]:
    """op_type -> count of an (optimised) ONNX graph."""
    import onnx
    m = onnx.load(onnx_path, load_external_data=False)
    return dict(collections.Counter(n.op_type for n in m.graph.node))


def int8_kernels(onnx_path: str) -> Dict[str, int]:
    ops = count_ops(onnx_path)
    keys = INT8_OPS + ('QLinearSigmoid', 'QLinearMul', 'QLinearAdd',
                       'QLinearConcat', 'Conv', 'FusedConv', 'QuantizeLinear',
                       'DequantizeLinear')
    return {k: ops.get(k, 0) for k in keys}


def run(session, x) -> List[np.ndarray]:
    x = x.numpy() if isinstance(x, torch.Tensor) else x
    return session.run(None, {session.get_inputs()[0].name:
                              np.ascontiguousarray(x, dtype=np.float32)})


def timed_ms(fn, runs: int = 20, warmup: int = 3) -> Dict:
    """Median (and min/max) wall time of ``runs`` calls of ``fn()``, ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return dict(median=statistics.median(times), min=min(times),
                max=max(times), runs=runs)


def latency_ms(session, x, runs: int = 20, warmup: int = 3) -> Dict:
    """Median (and min/max) wall time of ``runs`` single runs, in ms."""
    return timed_ms(lambda: run(session, x), runs, warmup)


def predict(session, groups: List[int], bbox_head, inputs, data_samples,
            rescale: bool = True):
    """Detections of ONNX ``session`` for a preprocessed batch, through
    ``bbox_head.predict_by_feat`` (the head's own decoding + NMS); the
    results are stored in ``data_samples[i].pred_instances``."""
    from .export import unflatten
    outs = [torch.from_numpy(o) for o in run(session, inputs)]
    feats = unflatten(outs, groups)
    metas = [s.metainfo for s in data_samples]
    results = bbox_head.predict_by_feat(*feats, batch_img_metas=metas,
                                        rescale=rescale)
    for s, r in zip(data_samples, results):
        s.pred_instances = r
    return data_samples


class SingleStageRunner:
    """A single-stage export run by onnxruntime, decoded by the config's
    ``bbox_head.predict_by_feat`` (the counterpart of
    :class:`~mmzsq.deployment.two_stage.TwoStageRunner`).

    ``detector``: the float detector built from the config (its head's
    post-processing and test_cfg are used; its weights are not).
    """

    def __init__(self, detector, onnx_path: str, threads: int = 1,
                 work_dir: Optional[str] = None):
        import os.path as osp

        from .export import output_groups
        self.detector, self.groups = detector, output_groups(onnx_path)
        self.optimized = {}
        opt = None
        if work_dir:
            opt = self.optimized['features'] = osp.join(
                work_dir, osp.basename(onnx_path).replace(
                    '.onnx', '_ort_opt.onnx'))
        self.sessions = {'features': make_session(onnx_path, threads, opt)}

    @torch.no_grad()
    def predict(self, inputs, data_samples, rescale: bool = True):
        return predict(self.sessions['features'], self.groups,
                       self.detector.bbox_head, inputs, data_samples,
                       rescale)

    def kernels(self) -> Dict[str, int]:
        """int8 kernel counts of the onnxruntime-optimised graph (needs
        ``work_dir``)."""
        return int8_kernels(self.optimized['features'])
