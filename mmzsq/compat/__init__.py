"""Compatibility patches that let the pinned OpenMMLab stack run on torch 2.x.

Each patch lives in its own module, is idempotent, and does nothing when the
thing it fixes is already fine (so newer releases are left alone).
"""
from .mmengine_checkpoint import patch_mmengine_checkpoint_loading
from .mmrazor_torch2 import patch_torch_for_mmrazor

__all__ = ['apply_compat_patches', 'patch_torch_for_mmrazor',
           'patch_mmengine_checkpoint_loading']


def apply_compat_patches() -> None:
    """Apply every patch; called on ``import mmzsq``."""
    patch_torch_for_mmrazor()
    patch_mmengine_checkpoint_loading()
