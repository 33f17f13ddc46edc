"""Export the quantized student of an mmzsq checkpoint to ONNX (QDQ).

Single-stage detectors: one graph = backbone + neck + the head's raw
outputs (``bbox_head.forward``); NMS and box decoding stay out and are done
in Python by the head's own ``predict_by_feat``
(:mod:`mmzsq.deployment.ort_runner`).  The output nesting (e.g. YOLOv5: 3
groups x 3 levels) is stored in the model's ``metadata_props`` as
``mmzsq_output_groups``.  Two-stage detectors (RoI heads) are exported as
three graphs by :mod:`mmzsq.deployment.two_stage`, with :func:`export_graph`.
"""
import json
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmzsq.utils.checkpoint import (check_checkpoint, read_checkpoint,
                                    state_dict_of)
from mmzsq.utils.errors import UserError

OPSET = 17


def load_quantized_algorithm(config: str, checkpoint: str,
                             cfg_options: Optional[Dict] = None):
    """(cfg, algorithm) built from a configs/zsq config, checkpoint loaded.

    Raises :class:`UserError` for a float checkpoint or a float config.
    """
    from mmengine.registry import MODELS, init_default_scope
    check_checkpoint(checkpoint)
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'architecture' not in cfg.model:
        raise UserError(f'{config} builds a float detector; pass the '
                        'configs/zsq/ config the checkpoint was trained with')
    cfg.model.init_checkpoint = None  # weights come from ``checkpoint``
    cfg.model.teacher_checkpoint = None
    state = state_dict_of(read_checkpoint(checkpoint))
    if not any('fake_quant.' in k for k in state):
        raise UserError(
            f'{checkpoint} is a float checkpoint (no quantizer step sizes); '
            'export a checkpoint saved by tools/train.py with a configs/zsq/ '
            'config')
    init_default_scope(cfg.get('default_scope', 'mmyolo'))
    model = MODELS.build(cfg.model)
    try:
        missing, _ = model.load_state_dict(state, strict=False)
    except ValueError as e:  # bit-width mismatch (LSQFakeQuantize)
        raise UserError(str(e)) from None
    missing = [k for k in missing if k.startswith('architecture.')]
    if missing:
        raise UserError(f'{checkpoint}: {len(missing)} student weights '
                        f'missing, e.g. {missing[0]}; use the config the '
                        'checkpoint was trained with')
    return cfg, model.eval()


# backbones whose legacy-exporter trace is only valid for the example's
# batch size and H, W: mmdet's Swin reads ``B, L, C = x.shape`` as Python
# ints in the window partition / attention reshapes, so they become
# constants (measured: batch 2 through a batch-1 export gives wrong
# outputs silently, another H, W fails in a Reshape)
FIXED_SHAPE_BACKBONES = ('SwinTransformer', )


def check_traceable(detector: nn.Module):
    """:class:`UserError` for a detector whose ONNX trace would bake in the
    example's shapes (see ``FIXED_SHAPE_BACKBONES``)."""
    name = type(getattr(detector, 'backbone', None)).__name__
    if name in FIXED_SHAPE_BACKBONES:
        raise UserError(
            f'{name} backbone: torch\'s ONNX exporter (legacy, dynamo=False)'
            ' turns its window-attention reshapes into constants for the '
            'example batch and image size, so the graph is wrong for any '
            'other batch / size; export a CNN-backbone student (e.g. '
            'configs/zsq/mask-rcnn_r50_fpn_*.py) instead')


class RawHeadOutputs(nn.Module):
    """``x -> flat tuple of bbox_head.forward(extract_feat(x))`` tensors."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        if hasattr(detector, 'roi_head'):
            raise UserError('a two-stage detector (RoI heads) has no single '
                            'raw-output graph; export it with '
                            'mmzsq.deployment.two_stage.export_two_stage '
                            '(tools/deployment/export_onnx.py does)')
        check_traceable(detector)
        self.detector = detector
        self.groups: List[int] = []

    def forward(self, x):
        outs = self.detector.bbox_head(self.detector.extract_feat(x))
        flat, groups = [], []
        for o in outs:
            o = list(o) if isinstance(o, (list, tuple)) else [o]
            groups.append(len(o))
            flat += o
        self.groups = groups
        return tuple(flat)


def unflatten(outputs: Sequence, groups: Sequence[int]) -> List[List]:
    res, i = [], 0
    for g in groups:
        res.append(list(outputs[i:i + g]))
        i += g
    return res


def export_graph(module: nn.Module, example: torch.Tensor, out: str,
                 input_name: str, output_names: Sequence[str],
                 dynamic_axes: Dict, opset: int = OPSET,
                 metadata: Optional[Dict[str, str]] = None,
                 int8_activations: Optional[Iterable] = None):
    """``torch.onnx`` (legacy exporter) + :func:`finalize_qdq` +
    ``metadata_props`` + ``onnx.checker``: one graph of ``module`` at
    ``out``.

    ``int8_activations``: calibration inputs (preprocessed batches); when
    given, the activations between quantized convs are quantized too
    (:mod:`mmzsq.deployment.int8_activations`)."""
    import onnx
    if opset < 13:
        raise UserError(f'opset {opset}: QDQ per-channel needs opset >= 13')
    torch.onnx.export(module, (example, ), out, input_names=[input_name],
                      output_names=list(output_names),
                      dynamic_axes=dynamic_axes, opset_version=opset,
                      dynamo=False, do_constant_folding=True)
    from .onnx_qdq import finalize_qdq
    m = onnx.load(out)
    finalize_qdq(m)
    if int8_activations is not None:
        from .int8_activations import ort_min_max, quantize_activations
        batches = [b.numpy() if isinstance(b, torch.Tensor) else b
                   for b in int8_activations]
        stats = quantize_activations(m, ort_min_max(m, batches))
        MMLogger.get_current_instance().info(
            f'int8 activations: {stats}')
    for key, value in (metadata or {}).items():
        meta = m.metadata_props.add()
        meta.key, meta.value = key, value
    onnx.checker.check_model(m)
    onnx.save(m, out)


def export_onnx(detector: nn.Module, out: str, input_size=(640, 640),
                opset: int = OPSET, dynamic_hw: bool = True,
                int8_activations: Optional[Iterable] = None) -> List[int]:
    """Export single-stage ``detector`` (folded, QDQ layers) to ``out``;
    returns the output groups.  Batch (and H, W unless ``dynamic_hw=False``)
    dynamic.  ``int8_activations``: see :func:`export_graph`."""
    if opset < 13:
        raise UserError(f'opset {opset}: QDQ per-channel needs opset >= 13')
    wrapper = RawHeadOutputs(detector).eval()
    x = torch.zeros(1, 3, *input_size)
    with torch.no_grad():
        outs = wrapper(x)
    names = [f'out{i}' for i in range(len(outs))]
    axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic_hw \
        else {0: 'batch'}
    dyn = {'input': axes}
    dyn.update({n: {0: 'batch', 2: f'{n}_h', 3: f'{n}_w'}
                if dynamic_hw and o.dim() == 4 else {0: 'batch'}
                for n, o in zip(names, outs)})
    export_graph(wrapper, x, out, 'input', names, dyn, opset,
                 {'mmzsq_output_groups': json.dumps(wrapper.groups)},
                 int8_activations)
    return wrapper.groups


def read_metadata(onnx_path: str) -> Dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as a dict."""
    import onnx
    m = onnx.load(onnx_path, load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def output_groups(onnx_path: str) -> List[int]:
    meta = read_metadata(onnx_path)
    if 'mmzsq_output_groups' in meta:
        return json.loads(meta['mmzsq_output_groups'])
    raise UserError(f'{osp.basename(onnx_path)} has no mmzsq output groups; '
                    'export it with tools/deployment/export_onnx.py')
