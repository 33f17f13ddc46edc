from .lsq_fake_quantize import LSQFakeQuantize, check_bits

__all__ = ['LSQFakeQuantize', 'check_bits']
