"""mmzsq: zero-shot (data-free) quantization of OpenMMLab detectors."""
from .compat import apply_compat_patches
from .version import __version__

apply_compat_patches()

from . import registry  # noqa: E402,F401  (creates the mmzsq scope)

__all__ = ['__version__', 'apply_compat_patches']
