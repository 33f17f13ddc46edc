"""C3k2: YOLO11's replacement for YOLOv8's C2f."""
import torch.nn as nn
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmyolo.models.layers import CSPLayerWithTwoConv, DarknetBottleneck

from mmzsq.registry import MODELS

from .c3k import C3k


@MODELS.register_module()
class C3k2(CSPLayerWithTwoConv):
    """Ultralytics ``C3k2``: mmyolo's :class:`CSPLayerWithTwoConv` (YOLOv8's
    C2f: split, chain of blocks, concat every intermediate, 1x1 fuse) with
    different inner blocks.

    How it differs from YOLOv8's C2f:

    - ``c3k=False``: each block is a bottleneck with *two 3x3 convs and a
      0.5 hidden ratio* (C2f's bottleneck keeps the full width);
    - ``c3k=True``: each block is a :class:`~.C3k` (a small C3 with 3x3
      bottlenecks), used in YOLO11's deep stages and, for the m/l/x scales,
      everywhere;
    - ``expand_ratio`` is 0.25 in the first two backbone stages;
    - residuals are on everywhere, also in the neck (YOLOv8's neck has them
      off).

    Keys: ``cv1/cv2/m`` → ``main_conv/final_conv/blocks``, as for C2f.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expand_ratio (float): Hidden channels = ``out_channels * ratio``.
        num_blocks (int): Number of inner blocks.
        add_identity (bool): Residual connections in the inner blocks.
        c3k (bool): Use :class:`~.C3k` inner blocks.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expand_ratio: float = 0.5,
                 num_blocks: int = 1,
                 add_identity: bool = True,
                 c3k: bool = False,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU', inplace=True),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            in_channels,
            out_channels,
            expand_ratio=expand_ratio,
            num_blocks=num_blocks,
            add_identity=add_identity,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)
        mid = self.mid_channels
        cfg = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        if c3k:
            blocks = (C3k(mid, mid, 0.5, 2, add_identity, **cfg)
                      for _ in range(num_blocks))
        else:
            blocks = (DarknetBottleneck(
                mid,
                mid,
                expansion=0.5,
                kernel_size=(3, 3),
                padding=(1, 1),
                add_identity=add_identity,
                **cfg) for _ in range(num_blocks))
        self.blocks = nn.ModuleList(blocks)
