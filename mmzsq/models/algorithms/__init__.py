from .quant_distill import (NonFiniteLossError, QuantDistillAlgorithm,
                            num_classes_of)

__all__ = ['QuantDistillAlgorithm', 'NonFiniteLossError', 'num_classes_of']
