from .adaptive_label_sampling_hook import (AdaptiveLabelSamplingHook,
                                           adaptive_label_update)

__all__ = ['AdaptiveLabelSamplingHook', 'adaptive_label_update']
