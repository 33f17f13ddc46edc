from .detector_adapter import DetectorAdapter, without_mask_branch
from .generate import (check_synthesis, set_meta, synthesize_set,
                       teacher_hash)
from .synthetic_set import SetMismatchError, SyntheticSet

__all__ = ['DetectorAdapter', 'without_mask_branch', 'check_synthesis',
           'synthesize_set', 'set_meta', 'teacher_hash', 'SyntheticSet',
           'SetMismatchError']
