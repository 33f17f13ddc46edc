"""YOLO11 neck."""
from typing import List, Union

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.utils import ConfigType, OptMultiConfig
from mmyolo.models.necks import YOLOv8PAFPN
from mmyolo.models.utils import make_divisible, make_round

from mmzsq.registry import MODELS

from .c3k2 import C3k2


@MODELS.register_module()
class YOLO11PAFPN(YOLOv8PAFPN):
    """YOLO11 neck: mmyolo's :class:`YOLOv8PAFPN` (same wiring, concat order,
    nearest upsampling and 3x3 stride-2 downsampling convs) with
    :class:`~.C3k2` instead of C2f.

    Differences from YOLOv8: the backbone's P3 input is wider than the
    P3 output (``in_channels=[512, 512, 1024]``,
    ``out_channels=[256, 512, 1024]``: the downsample convs take
    ``out_channels``); the C3k2 layers keep their residuals on, and
    the last bottom-up layer (P5 output) uses :class:`~.C3k` blocks (all of
    them do with ``c3k_everywhere=True``, Ultralytics' m/l/x scales).

    Ultralytics layer ↔ module: 13 → ``top_down_layers.0``, 16 →
    ``top_down_layers.1`` (P3 out), 17 → ``downsample_layers.0``, 19 →
    ``bottom_up_layers.0`` (P4 out), 20 → ``downsample_layers.1``, 22 →
    ``bottom_up_layers.1`` (P5 out).

    Args:
        num_csp_blocks (int): C3k2 blocks before ``deepen_factor``
            (YOLO11: 2).
        c3k_everywhere (bool): C3k inner blocks in every C3k2.
        Others: as :class:`YOLOv8PAFPN`.
    """

    def __init__(self,
                 in_channels: List[int],
                 out_channels: Union[List[int], int],
                 deepen_factor: float = 1.0,
                 widen_factor: float = 1.0,
                 num_csp_blocks: int = 2,
                 c3k_everywhere: bool = False,
                 freeze_all: bool = False,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU', inplace=True),
                 init_cfg: OptMultiConfig = None):
        self.c3k_everywhere = c3k_everywhere
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            deepen_factor=deepen_factor,
            widen_factor=widen_factor,
            num_csp_blocks=num_csp_blocks,
            freeze_all=freeze_all,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)

    def _c3k2(self, in_channels: int, out_channels: int,
              c3k: bool) -> nn.Module:
        return C3k2(
            make_divisible(in_channels, self.widen_factor),
            make_divisible(out_channels, self.widen_factor),
            num_blocks=make_round(self.num_csp_blocks, self.deepen_factor),
            add_identity=True,
            c3k=c3k or self.c3k_everywhere,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def build_top_down_layer(self, idx: int) -> nn.Module:
        return self._c3k2(self.in_channels[idx - 1] + self.in_channels[idx],
                          self.out_channels[idx - 1], c3k=False)

    def build_downsample_layer(self, idx: int) -> nn.Module:
        # out (not in) channels: YOLO11's backbone P3 is wider than its
        # neck's P3 output (512 vs 256 before widen_factor)
        ch = make_divisible(self.out_channels[idx], self.widen_factor)
        return ConvModule(ch, ch, 3, stride=2, padding=1,
                          norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)

    def build_bottom_up_layer(self, idx: int) -> nn.Module:
        return self._c3k2(
            self.out_channels[idx] + self.out_channels[idx + 1],
            self.out_channels[idx + 1],
            c3k=idx + 1 == len(self.in_channels) - 1)
