"""Box-shaped instance masks for sets labelled with boxes only."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.structures.mask import BitmapMasks

from mmzsq.registry import TRANSFORMS


@TRANSFORMS.register_module()
class BoxMasks(BaseTransform):
    """Add ``gt_masks`` = filled boxes when the annotations carry none.

    Synthetic calibration sets have boxes only; a Mask R-CNN student's own
    detection loss (L_detect) then trains its mask head on box-shaped masks.
    Place it right after ``LoadAnnotations`` (before any resize / flip).
    """

    def transform(self, results):
        if results.get('gt_masks') is not None:
            return results
        h, w = results['img'].shape[:2]
        boxes = results['gt_bboxes']
        boxes = boxes.numpy() if hasattr(boxes, 'numpy') else np.asarray(
            boxes.tensor if hasattr(boxes, 'tensor') else boxes)
        if hasattr(results['gt_bboxes'], 'tensor'):
            boxes = results['gt_bboxes'].tensor.numpy()
        masks = np.zeros((len(boxes), h, w), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
            masks[i, max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 1
        results['gt_masks'] = BitmapMasks(masks, h, w)
        return results
