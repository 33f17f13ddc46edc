"""Undo the ``world_size`` factor some mmyolo heads put on their losses.

mmyolo's ``YOLOv5Head.loss_by_feat`` (and those of ``YOLOv5InsHead``,
``YOLOv6Head``, ``YOLOv7Head``, ``YOLOv8Head``; YOLO11 uses the last)
return every loss term multiplied by ``get_dist_info()[1]``: Ultralytics'
convention of a global-batch sum that DDP's gradient averaging turns back
into a per-process sum.  mmzsq weighs L_detect against terms that carry no
such factor, so on W processes the detection term would count W times more
than configured: in Stage II (DDP) against L_KD / L_feat, in Stage I (no
gradient averaging across ranks) as an effective ``det_loss_weight * W``.
:func:`undo_world_size_scaling` divides it out, for exactly these heads
(mmdet's heads, RTMDet, YOLOX and PPYOLOE apply no such factor).
"""
from typing import Dict, Optional, Tuple

import torch.nn as nn


def _scaling_heads() -> Tuple[type, ...]:
    try:
        from mmyolo.models.dense_heads import (YOLOv5Head, YOLOv5InsHead,
                                               YOLOv6Head, YOLOv7Head,
                                               YOLOv8Head)
    except ImportError:  # pragma: no cover - mmdet-only installs
        return ()
    return (YOLOv5Head, YOLOv5InsHead, YOLOv6Head, YOLOv7Head, YOLOv8Head)


def _loss_by_feat_owner(head: nn.Module) -> Optional[type]:
    """The class whose ``loss_by_feat`` a head runs."""
    for cls in type(head).__mro__:
        if 'loss_by_feat' in vars(cls):
            return cls
    return None


def head_scales_by_world_size(model: nn.Module) -> bool:
    """Whether ``model.bbox_head.loss_by_feat`` multiplies its losses by
    the world size (the mmyolo heads listed in the module docstring; a
    subclass that overrides ``loss_by_feat`` does not count)."""
    head = getattr(model, 'bbox_head', None)
    if not isinstance(head, nn.Module):
        return False
    return _loss_by_feat_owner(head) in _scaling_heads()


def undo_world_size_scaling(model: nn.Module, losses: Dict) -> Dict:
    """``losses`` (a detector's ``loss`` dict) with the head's
    ``world_size`` factor divided out of every ``loss*`` term; unchanged
    when not distributed or when the head applies no such factor."""
    from mmengine.dist import get_world_size
    world = get_world_size()
    if world == 1 or not head_scales_by_world_size(model):
        return losses
    out = type(losses)()
    for k, v in losses.items():
        if 'loss' in k:
            v = [x / world for x in v] if isinstance(v, (list, tuple)) \
                else v / world
        out[k] = v
    return out
