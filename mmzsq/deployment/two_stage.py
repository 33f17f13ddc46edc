"""Two-stage detectors (Faster / Mask R-CNN): three ONNX graphs, RoI stage
in Python.

The RoI stage (proposal NMS, RoIAlign, per-class NMS, mask pasting) is
data-dependent and stays out of the graphs; ONNX holds the three dense
parts, exported from one output path ``model.onnx``:

* ``model.onnx``: image ``(B, 3, H, W)`` -> the neck feature maps + the raw
  ``rpn_head.forward`` outputs (RPN: cls per level, reg per level); dynamic
  batch, H, W.  ``metadata_props``: ``mmzsq_output_groups`` (e.g. ``[5, 5,
  5]``: 5 neck levels, 5 cls, 5 reg) and ``mmzsq_two_stage`` (json: the
  head graphs' file names);
* ``model.bbox_head.onnx``: RoI features ``(N, C, 7, 7)`` ->
  ``roi_head.bbox_head.forward`` = (cls_score, bbox_pred); dynamic N;
* ``model.mask_head.onnx`` (Mask R-CNN): RoI features ``(N, C, 14, 14)`` ->
  mask logits ``(N, classes, 28, 28)``; dynamic N.

Each graph gets the same treatment as a single-stage export (folded BN,
QDQ with the learned step sizes, optional calibrated output quantization,
int8 weights / int32 biases).  Quantized: the backbone/neck/RPN conv, the
bbox head's shared FCs (``QDQLinear``: ``Gemm``) and the mask head's 3x3
convs.  Float, as in the student: the stem conv, ``rpn_cls``/``rpn_reg``,
``fc_cls``/``fc_reg``, ``conv_logits`` (the quantizer skips first/last
layers) and the mask head's ``upsample`` ``ConvTranspose2d`` (the eager
quantizer wraps only Conv2d/Linear).

:class:`TwoStageRunner` runs them with onnxruntime inside mmdet's own code:
``rpn_head.predict_by_feat`` on graph 1's RPN outputs, then
``roi_head.predict`` (``bbox2roi``, mmcv ``RoIAlign``, the bbox head's
``predict_by_feat`` with mmdet's NMS, the mask head's ``predict_by_feat``)
with ``bbox_head.forward`` / ``mask_head.forward`` answered by the
onnxruntime sessions of the head graphs.
"""
import contextlib
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from mmzsq.utils.errors import UserError

from .export import (OPSET, check_traceable, export_graph, read_metadata,
                     unflatten)

META_KEY = 'mmzsq_two_stage'
HEADS = ('bbox_head', 'mask_head')
HEAD_OUTPUTS = dict(bbox_head=('cls_score', 'bbox_pred'),
                    mask_head=('mask_pred', ))


def is_two_stage(detector: nn.Module) -> bool:
    return hasattr(detector, 'roi_head')


def check_two_stage(detector: nn.Module):
    """:class:`UserError` unless ``detector`` is an RPN + StandardRoIHead
    detector (Faster / Mask R-CNN with FPN) the three graphs can express."""
    from mmdet.models.roi_heads import StandardRoIHead
    if not getattr(detector, 'with_rpn', False):
        raise UserError('two-stage export needs an rpn_head (this detector '
                        'reads precomputed proposals); export a Faster / '
                        'Mask R-CNN with an RPN')
    roi = detector.roi_head
    if type(roi) is not StandardRoIHead:
        raise UserError(
            f'{type(roi).__name__}: only StandardRoIHead (Faster / Mask '
            'R-CNN) is exportable; cascade / HTC / point-rend RoI heads run '
            'extra stages the three-graph export does not have')
    if roi.with_shared_head:
        raise UserError('RoI heads with a shared_head (R-CNN C4) are not '
                        'exportable; use an FPN Faster / Mask R-CNN')
    if not roi.with_bbox:
        raise UserError('the RoI head has no bbox_head; nothing to export')


def head_paths(out: str, with_mask: bool = True) -> Dict[str, str]:
    """``{'features': out, 'bbox_head': ..., 'mask_head': ...}`` for the
    output path ``out`` (``model.onnx`` -> ``model.bbox_head.onnx``)."""
    stem = out[:-5] if out.endswith('.onnx') else out
    paths = {'features': out, 'bbox_head': f'{stem}.bbox_head.onnx'}
    if with_mask:
        paths['mask_head'] = f'{stem}.mask_head.onnx'
    return paths


def roi_input_shape(extractor: nn.Module) -> Tuple[int, int, int]:
    """``(C, h, w)`` of the RoI features an extractor hands its head."""
    size = extractor.roi_layers[0].output_size
    h, w = (size, size) if isinstance(size, int) else size
    return int(extractor.out_channels), int(h), int(w)


def meta_samples(x: torch.Tensor) -> List:
    """Data samples whose metainfo says: the images are ``x`` as is (no
    resize, no padding); for forwards without a dataloader."""
    from mmdet.structures import DetDataSample
    h, w = x.shape[-2:]
    return [DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), batch_input_shape=(h, w),
        pad_shape=(h, w), scale_factor=(1., 1.))) for _ in range(len(x))]


def forward_once(detector: nn.Module, x: torch.Tensor):
    """Every layer of ``detector`` once on ``x`` (mmdet/mmyolo
    ``_forward``; two-stage: the RoI heads on the RPN's proposals, the mask
    head on the first 100): conv->BN discovery, LSQ step-size init."""
    if is_two_stage(detector):
        return detector._forward(x, meta_samples(x))
    return detector._forward(x)


class FeaturesAndRPN(nn.Module):
    """``x -> (*neck features, *flat rpn_head.forward outputs)``."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector
        self.groups: List[int] = []

    def forward(self, x):
        feats = self.detector.extract_feat(x)
        flat, groups = list(feats), [len(feats)]
        for o in self.detector.rpn_head(feats):
            o = list(o) if isinstance(o, (list, tuple)) else [o]
            groups.append(len(o))
            flat += o
        self.groups = groups
        return tuple(flat)


class HeadGraph(nn.Module):
    """``RoI features -> head.forward`` as a tuple of tensors."""

    def __init__(self, head: nn.Module, role: str):
        super().__init__()
        self.head, self.role = head, role

    def forward(self, x):
        out = self.head(x)
        out = tuple(out) if isinstance(out, (list, tuple)) else (out, )
        if len(out) != len(HEAD_OUTPUTS[self.role]) or not all(
                isinstance(o, torch.Tensor) for o in out):
            raise UserError(
                f'{type(self.head).__name__}.forward returns {len(out)} '
                f'outputs (tensors expected: '
                f'{", ".join(HEAD_OUTPUTS[self.role])}); only heads with '
                'classification and regression branches are exportable')
        return out


def export_two_stage(detector: nn.Module, out: str, input_size=(640, 640),
                     opset: int = OPSET, dynamic_hw: bool = True,
                     int8_activations=None) -> Dict[str, str]:
    """Export a two-stage ``detector`` (folded, QDQ layers) as the three
    graphs of the module docstring; returns ``{role: path}``.

    ``int8_activations`` (calibration images, see
    :func:`mmzsq.deployment.export.export_graph`) applies to graph 1; the
    RoI-head graphs keep the student's quantizers and the calibrated
    output quantization."""
    check_two_stage(detector)
    check_traceable(detector)
    roi = detector.roi_head
    paths = head_paths(out, roi.with_mask)
    # graph 1: image -> features + RPN raw outputs
    wrapper = FeaturesAndRPN(detector).eval()
    x = torch.zeros(1, 3, *input_size)
    with torch.no_grad():
        n_out = len(wrapper(x))
    names = [f'out{i}' for i in range(n_out)]
    axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic_hw \
        else {0: 'batch'}
    dyn = {'input': axes}
    dyn.update({n: {0: 'batch', 2: f'{n}_h', 3: f'{n}_w'} if dynamic_hw
                else {0: 'batch'} for n in names})
    info = dict(role='features', outputs=['neck'] + ['rpn'] * (
        len(wrapper.groups) - 1), **{
            k: osp.basename(paths[k]) for k in HEADS if k in paths})
    export_graph(wrapper, x, out, 'input', names, dyn, opset, {
        'mmzsq_output_groups': json.dumps(wrapper.groups),
        META_KEY: json.dumps(info)}, int8_activations)
    # graphs 2, 3: RoI features -> head raw outputs
    extractors = dict(bbox_head=roi.bbox_roi_extractor,
                      mask_head=getattr(roi, 'mask_roi_extractor', None))
    for role in HEADS:
        if role not in paths:
            continue
        shape = roi_input_shape(extractors[role])
        module = HeadGraph(getattr(roi, role), role).eval()
        names = list(HEAD_OUTPUTS[role])
        dyn = {n: {0: 'num_rois'} for n in ['rois'] + names}
        export_graph(module, torch.zeros(2, *shape), paths[role], 'rois',
                     names, dyn, opset, {META_KEY: json.dumps(dict(
                         role=role, input=list(shape)))})
    return paths


def two_stage_info(onnx_path: str) -> Optional[Dict]:
    """The ``mmzsq_two_stage`` metadata of graph 1 (None: single-stage),
    with the head graphs' paths resolved beside ``onnx_path``."""
    meta = read_metadata(onnx_path)
    if META_KEY not in meta:
        return None
    info = json.loads(meta[META_KEY])
    if info.get('role') != 'features':
        raise UserError(f'{onnx_path} is the {info.get("role")} graph of a '
                        'two-stage export; pass the first graph (the '
                        '--out path of export_onnx.py)')
    info['groups'] = json.loads(meta['mmzsq_output_groups'])
    info['paths'] = {'features': onnx_path}
    for role in HEADS:
        if info.get(role):
            path = osp.join(osp.dirname(onnx_path), info[role])
            if not osp.isfile(path):
                raise UserError(f'{path} (the {role} graph of {onnx_path}) '
                                'not found; keep the three files of '
                                'export_onnx.py together')
            info['paths'][role] = path
    return info


class OrtHead:
    """``head.forward`` stand-in: RoI features -> onnxruntime -> torch
    tensors (N = 0 answered without running the session)."""

    def __init__(self, session, role: str):
        from .ort_runner import run
        self.session, self.role = session, role
        shape = [d if isinstance(d, int) else 1
                 for d in session.get_inputs()[0].shape]
        shape[0] = 1
        # output shapes, N excepted, from one dummy run
        self.out_shapes = [o.shape[1:] for o in run(
            session, np.zeros(shape, np.float32))]

    def __call__(self, x: torch.Tensor):
        from .ort_runner import run
        if x.shape[0] == 0:
            outs = [torch.zeros(0, *s) for s in self.out_shapes]
        else:
            outs = [torch.from_numpy(o) for o in run(self.session, x)]
        return tuple(outs) if len(outs) > 1 else outs[0]


@contextlib.contextmanager
def heads_replaced(roi_head: nn.Module, forwards: Dict):
    """``roi_head.<role>.forward = forwards[role]`` for the duration."""
    saved = {}
    try:
        for role, fn in forwards.items():
            head = getattr(roi_head, role)
            saved[role] = head.__dict__.get('forward')
            head.forward = fn
        yield
    finally:
        for role, old in saved.items():
            head = getattr(roi_head, role)
            del head.forward
            if old is not None:
                head.forward = old


class TwoStageRunner:
    """A two-stage export run by onnxruntime inside mmdet's predict code.

    ``detector``: the float mmdet detector built from the config (its
    ``rpn_head``/``roi_head`` post-processing, RoI extractors and test_cfg
    are used; its weights are not).
    """

    def __init__(self, detector: nn.Module, onnx_path: str,
                 threads: int = 1, work_dir: Optional[str] = None):
        from .ort_runner import make_session
        info = two_stage_info(onnx_path)
        if info is None:
            raise UserError(f'{onnx_path} is a single-stage export')
        if not is_two_stage(detector):
            raise UserError(f'{osp.basename(onnx_path)} is a two-stage '
                            'export but the config builds a single-stage '
                            'detector; pass the config the model was '
                            'exported from')
        check_two_stage(detector)
        has_mask = 'mask_head' in info['paths']
        if has_mask != bool(detector.roi_head.with_mask):
            raise UserError(
                f'{osp.basename(onnx_path)} was exported '
                f'{"with" if has_mask else "without"} a mask head but the '
                f'config\'s detector has {"one" if not has_mask else "none"}'
                '; pass the config the model was exported from')
        self.detector, self.groups = detector, info['groups']
        self.paths, self.sessions, self.optimized = info['paths'], {}, {}
        for role, path in self.paths.items():
            opt = None
            if work_dir:
                opt = osp.join(work_dir, osp.basename(path).replace(
                    '.onnx', '_ort_opt.onnx'))
                self.optimized[role] = opt
            self.sessions[role] = make_session(path, threads, opt)
        self.heads = {role: OrtHead(self.sessions[role], role)
                      for role in HEADS if role in self.sessions}

    def raw(self, inputs) -> Tuple[List[torch.Tensor], List[List]]:
        """Graph 1: (neck features, RPN output groups)."""
        from .ort_runner import run
        outs = [torch.from_numpy(o)
                for o in run(self.sessions['features'], inputs)]
        groups = unflatten(outs, self.groups)
        return groups[0], groups[1:]

    @torch.no_grad()
    def predict(self, inputs, data_samples, rescale: bool = True):
        """mmdet ``TwoStageDetector.predict`` with the dense parts in
        onnxruntime; results in ``data_samples[i].pred_instances``."""
        det = self.detector
        feats, rpn_outs = self.raw(inputs)
        metas = [s.metainfo for s in data_samples]
        proposals = det.rpn_head.predict_by_feat(
            *rpn_outs, batch_img_metas=metas, rescale=False)
        with heads_replaced(det.roi_head, self.heads):
            results = det.roi_head.predict(feats, proposals, data_samples,
                                           rescale=rescale)
        return det.add_pred_to_datasample(data_samples, results)

    def kernels(self) -> Dict[str, Dict[str, int]]:
        """int8 kernel counts of each onnxruntime-optimised graph (needs
        ``work_dir``)."""
        from .ort_runner import int8_kernels
        return {role: int8_kernels(p) for role, p in self.optimized.items()}
