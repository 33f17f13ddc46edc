from .box_masks import BoxMasks
from .cached_load_image import CachedLoadImageFromFile

__all__ = ['BoxMasks', 'CachedLoadImageFromFile']
