"""YOLO11 backbone."""
import copy
from typing import List, Tuple, Union

from mmcv.cnn import ConvModule
from mmdet.utils import ConfigType, OptMultiConfig
from mmyolo.models.backbones import BaseBackbone, YOLOv8CSPDarknet
from mmyolo.models.layers import SPPFBottleneck
from mmyolo.models.utils import make_divisible, make_round

from mmzsq.registry import MODELS

from .c2psa import C2PSA
from .c3k2 import C3k2


@MODELS.register_module()
class YOLO11CSPDarknet(BaseBackbone):
    """YOLO11 backbone, laid out like mmyolo's :class:`YOLOv8CSPDarknet`
    (``stem``, ``stage1`` … ``stage4``, each a 3x3 stride-2 conv then a CSP
    layer; SPPF ends the last stage) and built with the same
    ``deepen_factor``/``widen_factor``/``last_stage_out_channels`` rules.

    Differences from YOLOv8:

    - the CSP layers are :class:`~.C3k2` (``expand_ratio`` 0.25 in stages
      1–2, :class:`~.C3k` inner blocks in stages 3–4, or everywhere with
      ``c3k_everywhere=True`` as in Ultralytics' m/l/x scales);
    - stages 1–2 widen in the C3k2 (64→128→**256**, 256→256→**512**)
      instead of in the stride-2 conv;
    - the last stage ends with SPPF *and* a :class:`~.C2PSA`
      (``backbone.stage4.3``).

    Ultralytics layer ``i`` (0–10) ↔ ``stem`` / ``stage{s}.{j}``:
    0 → stem, 1–2 → stage1.0–1, 3–4 → stage2.0–1, 5–6 → stage3.0–1,
    7–10 → stage4.0–3.

    Args:
        arch (str): Only ``'P5'``.
        last_stage_out_channels (int): Width of the last stage before
            ``widen_factor`` (1024 for n/s, 512 for m/l/x: Ultralytics'
            ``max_channels``).
        c3k_everywhere (bool): C3k inner blocks in every C3k2 (m/l/x).
        Others: as :class:`YOLOv8CSPDarknet`.
    """
    # in, conv out, csp out, num_blocks, c3k, csp expand_ratio, spp+psa
    # (None: last_stage_out_channels)
    arch_settings = {
        'P5': [[64, 128, 256, 2, False, 0.25, False],
               [256, 256, 512, 2, False, 0.25, False],
               [512, 512, 512, 2, True, 0.5, False],
               [512, None, None, 2, True, 0.5, True]],
    }

    def __init__(self,
                 arch: str = 'P5',
                 last_stage_out_channels: int = 1024,
                 c3k_everywhere: bool = False,
                 plugins: Union[dict, List[dict]] = None,
                 deepen_factor: float = 1.0,
                 widen_factor: float = 1.0,
                 input_channels: int = 3,
                 out_indices: Tuple[int] = (2, 3, 4),
                 frozen_stages: int = -1,
                 norm_cfg: ConfigType = dict(
                     type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='SiLU', inplace=True),
                 norm_eval: bool = False,
                 init_cfg: OptMultiConfig = None):
        if arch not in self.arch_settings:
            raise ValueError(f'YOLO11CSPDarknet arch must be one of '
                             f'{list(self.arch_settings)}, got {arch!r}')
        setting = copy.deepcopy(self.arch_settings[arch])
        setting[-1][1] = setting[-1][2] = last_stage_out_channels
        if c3k_everywhere:
            for stage in setting:
                stage[4] = True
        super().__init__(
            setting,
            deepen_factor,
            widen_factor,
            input_channels=input_channels,
            out_indices=out_indices,
            plugins=plugins,
            frozen_stages=frozen_stages,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            norm_eval=norm_eval,
            init_cfg=init_cfg)

    # same stem (3x3 s2 conv) and init (PyTorch defaults) as YOLOv8
    build_stem_layer = YOLOv8CSPDarknet.build_stem_layer
    init_weights = YOLOv8CSPDarknet.init_weights

    def build_stage_layer(self, stage_idx: int, setting: list) -> list:
        """Stride-2 conv, C3k2, and (last stage) SPPF + C2PSA."""
        in_ch, conv_ch, out_ch, num_blocks, c3k, ratio, last = setting
        in_ch, conv_ch, out_ch = (make_divisible(c, self.widen_factor)
                                  for c in (in_ch, conv_ch, out_ch))
        num_blocks = make_round(num_blocks, self.deepen_factor)
        cfg = dict(norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        stage = [
            ConvModule(in_ch, conv_ch, 3, stride=2, padding=1, **cfg),
            C3k2(conv_ch, out_ch, expand_ratio=ratio, num_blocks=num_blocks,
                 add_identity=True, c3k=c3k, **cfg)
        ]
        if last:
            stage.append(SPPFBottleneck(out_ch, out_ch, kernel_sizes=5,
                                        **cfg))
            stage.append(C2PSA(out_ch, out_ch, num_blocks=num_blocks, **cfg))
        return stage
