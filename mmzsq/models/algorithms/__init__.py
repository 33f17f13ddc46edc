from .quant_aware_ema import QuantAwareEMA
from .quant_distill import (BN_MODES, NonFiniteLossError,
                            QuantDistillAlgorithm, feat_taps, num_classes_of,
                            resolve_bn_mode)

__all__ = ['QuantDistillAlgorithm', 'NonFiniteLossError', 'num_classes_of',
           'QuantAwareEMA', 'BN_MODES', 'feat_taps', 'resolve_bn_mode']
