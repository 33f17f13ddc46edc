"""YOLO11 (Ultralytics 8.3+) as mmyolo components.

YOLO11 is YOLOv8 with three changes, and everything else (data
preprocessor, ``YOLODetector``, ``YOLOv8Head`` with its DFL/CIoU/BCE losses
and ``BatchTaskAlignedAssigner``, ``SPPFBottleneck``, the PAFPN wiring) is
reused from mmyolo unchanged:

- :class:`C3k2` replaces YOLOv8's C2f (``CSPLayerWithTwoConv``);
- :class:`C2PSA` (position-sensitive attention) follows SPPF at the end of
  the backbone;
- the classification branch of the head uses depthwise-separable convs
  (:class:`YOLO11HeadModule`).
"""
from .c2psa import C2PSA, PSAAttention, PSABlock
from .c3k import C3k
from .c3k2 import C3k2
from .yolo11_csp_darknet import YOLO11CSPDarknet
from .yolo11_head_module import YOLO11HeadModule
from .yolo11_pafpn import YOLO11PAFPN

__all__ = ['C3k', 'C3k2', 'PSAAttention', 'PSABlock', 'C2PSA',
           'YOLO11CSPDarknet', 'YOLO11PAFPN', 'YOLO11HeadModule']
