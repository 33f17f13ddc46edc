"""C2PSA: the position-sensitive attention block that ends YOLO11's
backbone (no mmyolo counterpart)."""
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

from mmzsq.registry import MODELS


@MODELS.register_module()
class PSAAttention(BaseModule):
    """Ultralytics ``Attention``: multi-head self-attention over all pixels
    with 1x1 ``qkv``/``proj`` convs and a depthwise 3x3 positional encoding
    ``pe`` on the values (all conv + BN, no activation).

    Args:
        channels (int): Input = output channels.
        num_heads (int): Attention heads (``channels`` must divide).
        attn_ratio (float): Key dim = ``head_dim * attn_ratio``.
    """

    def __init__(self,
                 channels: int,
                 num_heads: int = 8,
                 attn_ratio: float = 0.5,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        cfg = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
        self.qkv = ConvModule(channels,
                              channels + 2 * self.key_dim * num_heads, 1,
                              **cfg)
        self.proj = ConvModule(channels, channels, 1, **cfg)
        self.pe = ConvModule(channels, channels, 3, padding=1,
                             groups=channels, **cfg)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).view(
            b, self.num_heads, 2 * self.key_dim + self.head_dim,
            h * w).split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + \
            self.pe(v.reshape(b, c, h, w))
        return self.proj(x)


@MODELS.register_module()
class PSABlock(BaseModule):
    """Ultralytics ``PSABlock``: ``x + attn(x)`` then ``x + ffn(x)``, the ffn
    being 1x1 (c → 2c, SiLU) and 1x1 (2c → c, no activation).

    Args:
        channels (int): Input = output channels.
        attn_ratio (float): See :class:`PSAAttention`.
        num_heads (int): See :class:`PSAAttention`.
        add_identity (bool): The two residual connections.
    """

    def __init__(self,
                 channels: int,
                 attn_ratio: float = 0.5,
                 num_heads: int = 4,
                 add_identity: bool = True,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU', inplace=True),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.attn = PSAAttention(channels, num_heads, attn_ratio,
                                 conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.ffn = nn.Sequential(
            ConvModule(channels, channels * 2, 1, conv_cfg=conv_cfg,
                       norm_cfg=norm_cfg, act_cfg=act_cfg),
            ConvModule(channels * 2, channels, 1, conv_cfg=conv_cfg,
                       norm_cfg=norm_cfg, act_cfg=None))
        self.add_identity = add_identity

    def forward(self, x: Tensor) -> Tensor:
        if self.add_identity:
            x = x + self.attn(x)
            return x + self.ffn(x)
        return self.ffn(self.attn(x))


@MODELS.register_module()
class C2PSA(BaseModule):
    """Ultralytics ``C2PSA``: a CSP layer with two convs (split in two halves,
    run :class:`PSABlock` s on the second, concat, 1x1 fuse).

    Unlike mmyolo's ``CSPLayerWithTwoConv`` only the last block's output is
    concatenated, and input and output widths must be equal.  Keys:
    ``cv1/cv2/m`` → ``main_conv/final_conv/blocks``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (= ``in_channels``).
        num_blocks (int): Number of :class:`PSABlock`.
        expand_ratio (float): Hidden channels = ``in_channels * ratio``;
            the blocks use ``max(hidden // 64, 1)`` heads.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 num_blocks: int = 1,
                 expand_ratio: float = 0.5,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU', inplace=True),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels != out_channels:
            raise ValueError(f'C2PSA needs in_channels == out_channels, got '
                             f'{in_channels} and {out_channels}')
        self.mid_channels = mid = int(in_channels * expand_ratio)
        cfg = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.main_conv = ConvModule(in_channels, 2 * mid, 1, **cfg)
        self.final_conv = ConvModule(2 * mid, out_channels, 1, **cfg)
        self.blocks = nn.Sequential(*(PSABlock(
            mid, attn_ratio=0.5, num_heads=max(mid // 64, 1), **cfg)
                                      for _ in range(num_blocks)))

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.main_conv(x).split((self.mid_channels,
                                        self.mid_channels), 1)
        return self.final_conv(torch.cat((a, self.blocks(b)), 1))
