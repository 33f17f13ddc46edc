from .box_masks import BoxMasks

__all__ = ['BoxMasks']
