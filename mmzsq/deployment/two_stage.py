"""Two-stage (RoI) detectors, e.g. Mask R-CNN: three ONNX graphs with the
detector's own mmdet code between them.

``export_two_stage(detector, 'model.onnx')`` writes

* ``model.onnx``: image -> FPN features + RPN raw outputs (class scores and
  box deltas per level);
* ``model.bbox_head.onnx``: RoI features ``(N, C, 7, 7)`` -> ``cls_score``,
  ``bbox_pred`` (``roi_head.bbox_head.forward``: shared FCs, quantized
  ``Linear`` as QDQ ``Gemm``);
* ``model.mask_head.onnx`` (if the detector has a mask head): mask RoI
  features ``(N, C, 14, 14)`` -> mask logits (quantized convs; the
  ``ConvTranspose2d`` upsampler is not quantized by the student, so it stays
  float).

Out of the graphs, in Python, exactly as mmdet does it
(:class:`OrtTwoStageDetector`): RPN decoding + NMS
(``rpn_head.predict_by_feat``), RoIAlign (``roi_head``'s mmcv RoI
extractors, on the ONNX features), box decoding + NMS and mask pasting
(``roi_head.predict``, whose ``bbox_head`` / ``mask_head`` forwards are
the onnxruntime sessions of the two RoI graphs).  RoIs vary in number per
image, so the RoI graphs have a dynamic first axis.
"""
import contextlib
import os.path as osp
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch
import torch.nn as nn

from mmzsq.utils.cli import UserError

from .export import (IMAGE_AXES, OPSET, export_graph, flatten, onnx_metadata,
                     unflatten)


class FeaturesAndRPN(nn.Module):
    """``x -> (*neck features, *rpn cls scores, *rpn box deltas)``."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector
        self.groups: List[int] = []

    def forward(self, x):
        feats = self.detector.extract_feat(x)
        return flatten([feats, *self.detector.rpn_head(feats)], self)


class HeadOutputs(nn.Module):
    """``roi feats -> tuple of head.forward(roi feats)`` tensors."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head
        self.groups: List[int] = []

    def forward(self, x):
        out = self.head(x)
        return flatten(out if isinstance(out, (list, tuple)) else [out], self)


def _roi_input(extractor) -> torch.Tensor:
    size = extractor.roi_layers[0].output_size
    size = size if isinstance(size, (tuple, list)) else (size, size)
    return torch.zeros(2, extractor.out_channels, *size)


def roi_graph_paths(out: str) -> Dict[str, str]:
    stem = out[:-5] if out.endswith('.onnx') else out
    return dict(bbox_head=stem + '.bbox_head.onnx',
                mask_head=stem + '.mask_head.onnx')


def export_two_stage(detector: nn.Module, out: str, input_size=(800, 800),
                     opset: int = OPSET,
                     int8_activations: Optional[Iterable] = None
                     ) -> List[str]:
    """Export the three graphs (see module docstring); returns their paths.

    ``int8_activations`` (calibration images) applies to the image graph;
    the RoI graphs keep the student's quantizers plus the calibrated conv /
    linear output quantization."""
    roi = detector.roi_head
    if getattr(detector, 'rpn_head', None) is None:
        raise UserError('two-stage export needs an RPN (proposals from '
                        'data samples are not supported)')
    if getattr(roi, 'with_shared_head', False) or \
            type(roi).__name__ != 'StandardRoIHead':
        raise UserError(f'{type(roi).__name__}: only StandardRoIHead '
                        '(Faster / Mask R-CNN) is exportable; cascade and '
                        'shared-head RoI heads are not')
    paths = roi_graph_paths(out)
    written = []
    heads = [('bbox_head', roi.bbox_head, roi.bbox_roi_extractor)]
    if getattr(roi, 'with_mask', False):
        if getattr(roi, 'share_roi_extractor', False):
            raise UserError('a mask head sharing the bbox RoI extractor is '
                            'not exportable')
        heads.append(('mask_head', roi.mask_head, roi.mask_roi_extractor))
    graphs = {}
    for name, head, extractor in heads:
        wrapper = HeadOutputs(head)
        x = _roi_input(extractor)
        with torch.no_grad():
            wrapper(x)
        export_graph(wrapper, x, paths[name], opset, {0: 'rois'},
                     metadata={'mmzsq_output_groups': wrapper.groups})
        graphs[name] = osp.basename(paths[name])
        written.append(paths[name])
    wrapper = FeaturesAndRPN(detector)
    x = torch.zeros(1, 3, *input_size)
    with torch.no_grad():
        wrapper(x)
    export_graph(wrapper, x, out, opset, IMAGE_AXES, int8_activations,
                 {'mmzsq_output_groups': wrapper.groups,
                  'mmzsq_two_stage': graphs})
    return [out] + written


class _OrtHead:
    """``head.forward`` replacement running an onnxruntime session."""

    def __init__(self, session, groups, torch_forward):
        self.session, self.groups = session, groups
        self.torch_forward = torch_forward

    def __call__(self, x):
        from .ort_runner import run
        if x.shape[0] == 0:  # no RoIs: shapes from the (unused) torch head
            return self.torch_forward(x)
        outs = [torch.from_numpy(o) for o in run(self.session, x)]
        return outs[0] if self.groups == [1] else tuple(outs)


class OrtTwoStageDetector:
    """Inference of :func:`export_two_stage` graphs with onnxruntime, and
    mmdet's own RPN / RoI post-processing of ``detector`` (a float model of
    the same config: its weights are never used, only its heads' decoding,
    NMS, RoI extractors and test_cfg)."""

    latency_scope = 'end to end (three graphs + RPN/RoI post-processing)'

    def __init__(self, onnx_path: str, detector: nn.Module,
                 threads: int = 1, optimized_path: Optional[str] = None):
        from .ort_runner import make_session
        meta = onnx_metadata(onnx_path)
        if 'mmzsq_two_stage' not in meta:
            raise UserError(f'{onnx_path} is not a two-stage export of '
                            'tools/deployment/export_onnx.py')
        self.detector = detector.eval()
        self.groups = meta['mmzsq_output_groups']
        self.session = make_session(onnx_path, threads, optimized_path)
        self.heads = {}
        d = osp.dirname(onnx_path)
        for name, fname in meta['mmzsq_two_stage'].items():
            path = osp.join(d, fname)
            if not osp.isfile(path):
                raise UserError(f'{path} is missing: the three graphs of a '
                                'two-stage export belong together')
            self.heads[name] = (make_session(path, threads),
                                onnx_metadata(path)['mmzsq_output_groups'])

    @contextlib.contextmanager
    def _ort_heads(self):
        roi = self.detector.roi_head
        mods = [getattr(roi, n) for n in self.heads]
        for (name, (sess, groups)), mod in zip(self.heads.items(), mods):
            mod.forward = _OrtHead(sess, groups, type(mod).forward.__get__(
                mod))
        try:
            yield
        finally:
            for mod in mods:
                del mod.forward

    def raw(self, inputs):
        """(features, rpn cls scores, rpn box deltas) from onnxruntime."""
        from .ort_runner import run
        outs = [torch.from_numpy(o) for o in run(self.session, inputs)]
        return unflatten(outs, self.groups)

    @torch.no_grad()
    def predict(self, inputs, data_samples, rescale: bool = True):
        """Detections (and masks) for a preprocessed batch; stored in
        ``data_samples[i].pred_instances`` like ``detector.predict``."""
        feats, cls, reg = self.raw(inputs)
        metas = [s.metainfo for s in data_samples]
        det = self.detector
        rpn = det.rpn_head.predict_by_feat(cls, reg, batch_img_metas=metas,
                                           rescale=False)
        with self._ort_heads():
            results = det.roi_head.predict(tuple(feats), rpn, data_samples,
                                           rescale=rescale)
        return det.add_pred_to_datasample(data_samples, results)

    def timed(self, x, metainfo=None):
        """A zero-argument callable for :func:`latency_ms`: one image."""
        from mmdet.structures import DetDataSample
        h, w = x.shape[-2:]
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    batch_input_shape=(h, w), scale_factor=(1., 1.))
        meta.update(metainfo or {})
        return lambda: self.predict(x, [DetDataSample(metainfo=meta)])


def run_heads(path: str, x: torch.Tensor) -> List[np.ndarray]:
    """Raw outputs of one RoI-head graph on RoI features ``x``."""
    from .ort_runner import make_session, run
    return run(make_session(path, 1), x)
