from .synthesis_loop import SynthesisLoop, low_pass
from .zsq_train_loop import ZSQTrainLoop

__all__ = ['SynthesisLoop', 'low_pass', 'ZSQTrainLoop']
