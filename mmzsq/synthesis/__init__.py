from .detector_adapter import DetectorAdapter, without_mask_branch
from .generate import generate_synthetic_set, set_meta, teacher_hash
from .synthetic_set import SetMismatchError, SyntheticSet

__all__ = ['DetectorAdapter', 'without_mask_branch', 'generate_synthetic_set',
           'set_meta', 'teacher_hash', 'SyntheticSet', 'SetMismatchError']
