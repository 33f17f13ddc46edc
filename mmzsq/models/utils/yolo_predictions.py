"""The per-prior predictions of an mmyolo YOLO head's raw outputs: prior
centres, decoded boxes and class confidences, flattened over levels the
way ``YOLOv5Head.predict_by_feat`` does (``prior_generator.grid_priors``
and ``bbox_coder.decode`` with the strides), before any threshold or NMS.
"""
from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmzsq.utils.errors import ConfigError


class YOLOPredictions(NamedTuple):
    """``N`` priors over all levels, in ``predict_by_feat``'s order."""
    centres: Tensor  # [N, 2] prior (cell) centres, input pixels
    strides: Tensor  # [N] the stride of each prior's level
    boxes: Optional[Tensor]  # [B, N, 4] decoded x1, y1, x2, y2
    scores: Optional[Tensor]  # [B, N, C] sigmoid(obj) * sigmoid(cls_c)


def yolo_kind(head: nn.Module) -> Optional[str]:
    """``'objectness'`` for mmyolo's ``YOLOv5Head`` (outputs ``(cls_scores,
    bbox_preds, objectnesses)``), ``'anchor_free'`` for ``YOLOv8Head`` (also
    YOLO11's: ``(cls_scores, bbox_preds[, bbox_dist_preds])``), else None."""
    from mmyolo.models.dense_heads import YOLOv5Head, YOLOv8Head
    if isinstance(head, YOLOv8Head):
        return 'anchor_free'
    if type(head) is YOLOv5Head:
        return 'objectness'
    return None


def check_yolo_head(head: nn.Module, switch: str) -> str:
    """:func:`yolo_kind` of ``head``; other heads are a ConfigError naming
    ``switch`` (the config key that needs the head)."""
    kind = yolo_kind(head)
    if kind is None:
        raise ConfigError(
            f'{switch} is for single-stage YOLO heads (mmyolo YOLOv5Head, '
            f'YOLOv8Head / YOLO11), not {type(head).__name__}; drop it from '
            'this config')
    return kind


def _flat(maps: Sequence[Tensor], k: int) -> Tensor:
    """Level maps ``[B, A*k, H, W]`` -> ``[B, sum(H*W*A), k]``."""
    b = maps[0].shape[0]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(b, -1, k)
                      for m in maps], dim=1)


def decode_yolo_outputs(head: nn.Module, outs: Sequence, boxes: bool = True,
                        scores: bool = True) -> YOLOPredictions:
    """The predictions of ``outs``, the raw outputs of ``head.head_module``
    (training or eval format), computed in float32."""
    kind = check_yolo_head(head, 'decoding')
    cls_scores, bbox_preds = outs[0], outs[1]
    sizes = [c.shape[2:] for c in cls_scores]
    dev = cls_scores[0].device
    priors = torch.cat(head.prior_generator.grid_priors(
        sizes, dtype=torch.float, device=dev))
    strides = torch.cat([
        priors.new_full((s.numel() * head.num_base_priors, ), st)
        for s, st in zip(sizes, head.featmap_strides)])
    centres = priors[:, :2] if priors.shape[-1] == 2 else \
        (priors[:, :2] + priors[:, 2:]) / 2
    dec = conf = None
    if boxes:
        dec = head.bbox_coder.decode(
            priors[None], _flat([p.float() for p in bbox_preds], 4), strides)
    if scores:
        conf = _flat([c.float() for c in cls_scores],
                     head.num_classes).sigmoid()
        if kind == 'objectness':
            conf = conf * _flat([o.float() for o in outs[2]], 1).sigmoid()
    return YOLOPredictions(centres, strides, dec, conf)


def max_confidence(head: nn.Module, outs: Sequence) -> Tensor:
    """``decode_yolo_outputs(head, outs).scores.amax(-1)`` ([B, N], float32)
    without the [B, N, C] score tensor: the largest class logit of each
    prior through one sigmoid (sigmoid is monotonic, and YOLOv5's objectness
    factor is the same for every class), taken on the maps in place."""
    kind = check_yolo_head(head, 'decoding')
    a = head.num_base_priors
    conf = []
    for i, c in enumerate(outs[0]):
        b, ak, h, w = c.shape
        m = c.float().reshape(b, a, ak // a, h, w).amax(2).sigmoid()
        if kind == 'objectness':
            m = m * outs[2][i].float().reshape(b, a, h, w).sigmoid()
        conf.append(m.permute(0, 2, 3, 1).reshape(b, -1))
    return torch.cat(conf, 1)
