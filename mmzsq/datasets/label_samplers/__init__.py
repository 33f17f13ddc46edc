from .coco_label_sampler import CocoLabelSampler
from .multi_box_sampler import MultiBoxSampler
from .random_box_sampler import RandomBoxSampler
from .tile_box_sampler import TileBoxSampler

__all__ = ['RandomBoxSampler', 'TileBoxSampler', 'MultiBoxSampler',
           'CocoLabelSampler']
