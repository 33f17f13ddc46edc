"""C3k: the CSP block YOLO11 nests inside :class:`~.C3k2` (m/l/x, deep
stages)."""
import torch.nn as nn
from mmdet.models.layers import CSPLayer
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmyolo.models.layers import DarknetBottleneck

from mmzsq.registry import MODELS


@MODELS.register_module()
class C3k(CSPLayer):
    """Ultralytics ``C3k``: mmdet's :class:`CSPLayer` (YOLOv5's C3) whose
    bottlenecks use two ``k x k`` convs instead of ``1x1`` then ``3x3``.

    Keys follow mmyolo's C3 conversion: ``cv1/cv2/cv3/m`` →
    ``main_conv/short_conv/final_conv/blocks``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expand_ratio (float): Hidden channels = ``out_channels * ratio``.
        num_blocks (int): Number of bottlenecks (YOLO11 always uses 2).
        add_identity (bool): Residual connections in the bottlenecks.
        kernel_size (int): Kernel of both bottleneck convs. Defaults to 3.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expand_ratio: float = 0.5,
                 num_blocks: int = 2,
                 add_identity: bool = True,
                 kernel_size: int = 3,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU', inplace=True),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            in_channels,
            out_channels,
            expand_ratio=expand_ratio,
            num_blocks=0,  # blocks differ from mmdet's: built below
            add_identity=add_identity,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)
        mid = int(out_channels * expand_ratio)
        self.blocks = nn.Sequential(*(DarknetBottleneck(
            mid,
            mid,
            expansion=1.0,
            kernel_size=(kernel_size, kernel_size),
            padding=(kernel_size // 2, kernel_size // 2),
            add_identity=add_identity,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg) for _ in range(num_blocks)))
