from .low_pass_filter import LowPassFilter, low_pass
from .synthesis_loop import SynthesisLoop
from .zsq_train_loop import ZSQTrainLoop

__all__ = ['LowPassFilter', 'SynthesisLoop', 'low_pass', 'ZSQTrainLoop']
