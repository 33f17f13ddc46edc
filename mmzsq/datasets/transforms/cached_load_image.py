"""``LoadImageFromFile`` that decodes each image once and keeps it."""
from typing import Optional

from mmcv.transforms import LoadImageFromFile

from mmzsq.registry import TRANSFORMS
from mmzsq.utils.errors import ConfigError


@TRANSFORMS.register_module()
class CachedLoadImageFromFile(LoadImageFromFile):
    """Load an image from file, the first time; later, copy it from memory.

    Stage II revisits its synthetic set of a few hundred or thousand
    images for thousands of iterations: decoding the same PNGs again is
    most of the data pipeline's time (YOLOv5 pipeline at 160 px: 0.51 of
    0.87 ms per image), and on a CPU every millisecond of it is taken from
    the training step.  This transform keeps each decoded image (the
    uncropped, unconverted array, keyed by ``img_path``) while the cache
    holds less than ``max_cache_mb`` and hands out a copy, so later
    transforms may change theirs in place.

    A process holds its own cache: with ``num_workers=k`` each worker
    fills one (up to ``k`` x the set in memory when the workers persist).
    The files are taken as unchanged while training runs.

    Args:
        max_cache_mb (float): the decoded bytes kept per process; images
            beyond it are decoded every time.  Default 4096 (e.g. 3600
            640 x 640 images).
        **kwargs: :class:`mmcv.transforms.LoadImageFromFile`'s arguments.
    """

    def __init__(self, max_cache_mb: float = 4096, **kwargs):
        super().__init__(**kwargs)
        if not max_cache_mb >= 0:
            raise ConfigError(f'max_cache_mb={max_cache_mb!r}: give a size '
                              'in MiB >= 0 (0 caches nothing)')
        self.max_cache_bytes = max_cache_mb * 2**20
        self._cache, self._cached_bytes = {}, 0

    def transform(self, results: dict) -> Optional[dict]:
        img = self._cache.get(results['img_path'])
        if img is None:
            results = super().transform(results)
            if results is None:  # ignore_empty
                return None
            img = results['img']
            if self._cached_bytes + img.nbytes <= self.max_cache_bytes:
                self._cache[results['img_path']] = img
                self._cached_bytes += img.nbytes
        results['img'] = img.copy()
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self):
        return (f'{super().__repr__()[:-1]}, max_cache_mb='
                f'{self.max_cache_bytes / 2**20:g})')
