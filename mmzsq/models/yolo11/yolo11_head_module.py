"""YOLO11 head module."""
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmyolo.models.dense_heads import YOLOv8HeadModule

from mmzsq.registry import MODELS


@MODELS.register_module()
class YOLO11HeadModule(YOLOv8HeadModule):
    """YOLO11's decoupled DFL head: mmyolo's :class:`YOLOv8HeadModule` (same
    box branch, outputs, bias init and ``forward``) with a lighter
    classification branch.

    Differences from YOLOv8: each of the two hidden cls convs is a
    depthwise 3x3 + pointwise 1x1 pair (mmcv's
    :class:`DepthwiseSeparableConvModule`, both with BN + SiLU = Ultralytics'
    ``DWConv`` + ``Conv``), and the cls width is
    ``max(in_channels[0], min(num_classes, 100))``.

    Per level ``i``: ``reg_preds[i]`` = 3x3 conv, 3x3 conv, ``reg_preds[i][2]``
    (1x1 → ``4 * reg_max`` distribution logits); ``cls_preds[i]`` = DW-sep,
    DW-sep, ``cls_preds[i][2]`` (1x1 → ``num_classes`` logits).  Use it
    inside mmyolo's ``YOLOv8Head`` (loss, assigner and decoding unchanged).
    """

    def _init_layers(self):
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        reg_ch = max((16, self.in_channels[0] // 4, self.reg_max * 4))
        cls_ch = max(self.in_channels[0], min(self.num_classes, 100))
        cfg = dict(norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        for in_ch in self.in_channels:
            self.reg_preds.append(
                nn.Sequential(
                    ConvModule(in_ch, reg_ch, 3, padding=1, **cfg),
                    ConvModule(reg_ch, reg_ch, 3, padding=1, **cfg),
                    nn.Conv2d(reg_ch, 4 * self.reg_max, 1)))
            self.cls_preds.append(
                nn.Sequential(
                    DepthwiseSeparableConvModule(in_ch, cls_ch, 3, padding=1,
                                                 **cfg),
                    DepthwiseSeparableConvModule(cls_ch, cls_ch, 3,
                                                 padding=1, **cfg),
                    nn.Conv2d(cls_ch, self.num_classes, 1)))
        proj = torch.arange(self.reg_max, dtype=torch.float)
        self.register_buffer('proj', proj, persistent=False)
