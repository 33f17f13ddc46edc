from .adaptive_label_sampling_hook import (AdaptiveLabelSamplingHook,
                                           adaptive_label_update)
from .bn_reestimate_hook import BNReestimateHook

__all__ = ['AdaptiveLabelSamplingHook', 'adaptive_label_update',
           'BNReestimateHook']
