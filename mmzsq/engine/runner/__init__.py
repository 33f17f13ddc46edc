from .synthesis_loop import SynthesisLoop, low_pass

__all__ = ['SynthesisLoop', 'low_pass']
