"""A frozen detector seen from the synthesis loop.

Images live in *pixel space* scaled to [0, 1] with the channel order the
dataset pipelines load (BGR, as ``mmcv.imread``); the adapter sends them
through the detector's own ``data_preprocessor`` arithmetic (channel swap,
mean/std), so one loop serves mmyolo and mmdet detectors alike.  Labels are
``(bboxes [n, 4] pixel xyxy, labels [n])`` per image.

Data-sample format (dispatched on the preprocessor's training output, not on
the detector class):

* ``'packed'`` -- mmyolo's fast format, a dict with ``bboxes_labels`` [N, 6]
  (batch_idx, cls, x1, y1, x2, y2) and ``img_metas``.  mmyolo's YOLOv5 loss
  rewrites ``bboxes_labels`` in place, so a fresh tensor is built every call.
* ``'list'`` -- a list of ``DetDataSample`` (every mmdet detector).

Mask R-CNN: synthetic labels have no masks, so the **mask branch is skipped**
during the loss (the RoI head's ``mask_head`` is detached for the call): only
the RPN and RoI box losses drive the images.  Box-shaped masks were rejected:
they would teach the images that every object is a filled rectangle, a
target the real mask head never saw, pulling the images off the teacher's
mask statistics.
"""
import contextlib
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor

from mmzsq.models.losses.world_size_scaling import undo_world_size_scaling

Labels = Tuple[Tensor, Tensor]


def _is_packed_preprocessor(pre: nn.Module) -> bool:
    try:
        from mmyolo.models.data_preprocessors import \
            YOLOv5DetDataPreprocessor
    except ImportError:  # pragma: no cover
        return False
    return isinstance(pre, YOLOv5DetDataPreprocessor)


@contextlib.contextmanager
def without_mask_branch(model: nn.Module):
    """Temporarily detach every ``mask_head`` (mmdet RoI heads test
    ``self.mask_head is not None``)."""
    saved = []
    for m in model.modules():
        if getattr(m, 'mask_head', None) is not None and \
                isinstance(m.mask_head, nn.Module):
            saved.append((m, m.mask_head))
    try:
        for m, _ in saved:
            m.mask_head = None
        yield
    finally:
        for m, head in saved:
            m.mask_head = head


@contextlib.contextmanager
def head_module_training_outputs(model: nn.Module):
    """Temporarily set the ``training`` flag of ``bbox_head.head_module``
    itself (not of its children: BN layers stay in eval mode).  mmyolo's
    YOLOv8 head module (and YOLO11's) returns the DFL ``bbox_dist_preds``
    that its ``loss_by_feat`` needs only when training; YOLOv5's ignores the
    flag."""
    mod = getattr(getattr(model, 'bbox_head', None), 'head_module', None)
    if not isinstance(mod, nn.Module):
        yield
        return
    was = mod.training
    mod.training = True
    try:
        yield
    finally:
        mod.training = was


class DetectorAdapter:
    """Wraps a built mmdet/mmyolo detector; freezes it in eval mode."""

    def __init__(self, model: nn.Module, sample_format: str = 'auto'):
        self.model = model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        pre = model.data_preprocessor
        if sample_format == 'auto':
            sample_format = 'packed' if _is_packed_preprocessor(pre) \
                else 'list'
        if sample_format not in ('packed', 'list'):
            raise ValueError(f"sample_format must be 'auto', 'packed' or "
                             f"'list', got {sample_format!r}")
        self.sample_format = sample_format
        self.bgr_to_rgb = bool(getattr(pre, '_channel_conversion', False))
        if getattr(pre, '_enable_normalize', False):
            self.mean = pre.mean.detach().float().view(1, -1, 1, 1)
            self.std = pre.std.detach().float().view(1, -1, 1, 1)
        else:
            self.mean, self.std = None, None
        head = getattr(model, 'bbox_head', None) or getattr(
            getattr(model, 'roi_head', None), 'bbox_head', None)
        self.num_classes = int(getattr(head, 'num_classes'))
        meta = getattr(model, 'dataset_meta', None) or {}
        classes = meta.get('classes') if isinstance(meta, dict) else None
        if classes is None or len(classes) != self.num_classes:
            classes = self._default_classes()
        self.classes = list(classes)

    def _default_classes(self) -> List[str]:
        if self.num_classes == 80:
            from mmdet.datasets import CocoDataset
            return list(CocoDataset.METAINFO['classes'])
        return [f'class_{i}' for i in range(self.num_classes)]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- preprocessing --------------------------------------------------------
    def normalize(self, images: Tensor) -> Tensor:
        """[0, 1] BGR pixels -> the detector's input tensor."""
        x = images * 255.0
        if self.bgr_to_rgb and x.shape[1] == 3:
            x = x[:, [2, 1, 0]]
        if self.mean is not None:
            x = (x - self.mean.to(x)) / self.std.to(x)
        return x

    @staticmethod
    def _metainfo(h: int, w: int) -> dict:
        return dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    batch_input_shape=(h, w), scale_factor=(1.0, 1.0),
                    img_id=0, pad_param=None)

    def data_samples(self, shape: Tuple[int, int], labels: Sequence[Labels]):
        h, w = shape
        if self.sample_format == 'packed':
            rows = []
            for i, (b, c) in enumerate(labels):
                idx = b.new_full((len(b), 1), float(i))
                rows.append(torch.cat([idx, c.float()[:, None], b.float()], 1))
            return dict(bboxes_labels=torch.cat(rows, 0).to(self.device),
                        img_metas=[dict(batch_input_shape=(h, w))] *
                        len(labels))
        samples = []
        for b, c in labels:
            ds = DetDataSample(metainfo=self._metainfo(h, w))
            ds.gt_instances = InstanceData(
                bboxes=b.float().to(self.device),
                labels=c.long().to(self.device))
            ds.ignored_instances = InstanceData(
                bboxes=b.new_zeros((0, 4)).to(self.device),
                labels=c.new_zeros((0,)).long().to(self.device))
            samples.append(ds)
        return samples

    # -- model calls ---------------------------------------------------------
    def loss(self, inputs: Tensor, labels: Sequence[Labels]
             ) -> Dict[str, Tensor]:
        """Teacher training losses; ``inputs`` already normalised.  The
        same on any number of processes (the ``world_size`` factor of
        mmyolo's YOLO heads is divided out)."""
        samples = self.data_samples(tuple(inputs.shape[-2:]), labels)
        with without_mask_branch(self.model), \
                head_module_training_outputs(self.model):
            losses = self.model.loss(inputs, samples)
        # per-process losses: mmyolo's YOLO heads multiply by world_size
        return undo_world_size_scaling(self.model, losses)

    @staticmethod
    def sum_losses(losses: Dict[str, Tensor]) -> Tensor:
        total = 0.
        for k, v in losses.items():
            if 'loss' not in k:
                continue
            if isinstance(v, (list, tuple)):
                v = sum(x.sum() for x in v)
            total = total + v.sum()
        return total

    @torch.no_grad()
    def predict(self, images: Tensor) -> List[InstanceData]:
        """Detections (pixel xyxy, scores, labels) on [0, 1] BGR images."""
        x = self.normalize(images)
        h, w = x.shape[-2:]
        samples = [DetDataSample(metainfo=self._metainfo(h, w))
                   for _ in range(len(x))]
        with without_mask_branch(self.model):
            out = self.model.predict(x, samples, rescale=False)
        return [o.pred_instances for o in out]
