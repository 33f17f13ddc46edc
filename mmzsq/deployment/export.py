"""Export the quantized student of an mmzsq checkpoint to ONNX (QDQ).

Graph = backbone + neck + the head's raw outputs (``bbox_head.forward``);
NMS and box decoding stay out and are done in Python by the head's own
``predict_by_feat`` (:mod:`mmzsq.deployment.ort_runner`).  The output
nesting (e.g. YOLOv5: 3 groups x 3 levels) is stored in the model's
``metadata_props`` as ``mmzsq_output_groups``.
"""
import json
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmzsq.utils.cli import UserError, check_checkpoint

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
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise UserError(f'{checkpoint} is not a state-dict checkpoint')
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state.items()}
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


class RawHeadOutputs(nn.Module):
    """``x -> flat tuple of bbox_head.forward(extract_feat(x))`` tensors."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        if hasattr(detector, 'roi_head'):
            raise UserError('two-stage detectors (RoI heads) are not '
                            'exportable yet; export a single-stage '
                            '(YOLO / dense-head) model')
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


def export_onnx(detector: nn.Module, out: str, input_size=(640, 640),
                opset: int = OPSET, dynamic_hw: bool = True,
                int8_activations: Optional[Iterable] = None) -> List[int]:
    """Export ``detector`` (folded, QDQ layers) to ``out``; returns the
    output groups.  Batch (and H, W unless ``dynamic_hw=False``) dynamic.

    ``int8_activations``: calibration batches (preprocessed inputs); when
    given, the activations between quantized convs are quantized too
    (:mod:`mmzsq.deployment.int8_activations`)."""
    import onnx
    if opset < 13:
        raise UserError(f'opset {opset}: QDQ per-channel needs opset >= 13')
    wrapper = RawHeadOutputs(detector).eval()
    x = torch.zeros(1, 3, *input_size)
    with torch.no_grad():
        n_out = len(wrapper(x))
    names = [f'out{i}' for i in range(n_out)]
    axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic_hw \
        else {0: 'batch'}
    dyn = {'input': axes}
    dyn.update({n: {0: 'batch'} for n in names})
    torch.onnx.export(wrapper, (x, ), out, input_names=['input'],
                      output_names=names, dynamic_axes=dyn,
                      opset_version=opset, dynamo=False,
                      do_constant_folding=True)
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
    meta = m.metadata_props.add()
    meta.key, meta.value = 'mmzsq_output_groups', json.dumps(wrapper.groups)
    onnx.checker.check_model(m)
    onnx.save(m, out)
    return wrapper.groups


def output_groups(onnx_path: str) -> List[int]:
    import onnx
    m = onnx.load(onnx_path, load_external_data=False)
    for p in m.metadata_props:
        if p.key == 'mmzsq_output_groups':
            return json.loads(p.value)
    raise UserError(f'{osp.basename(onnx_path)} has no mmzsq output groups; '
                    'export it with tools/deployment/export_onnx.py')
