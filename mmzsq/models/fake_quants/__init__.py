from .lsq_fake_quantize import (LSQFakeQuantize, check_bits,
                                check_init_batches)

__all__ = ['LSQFakeQuantize', 'check_bits', 'check_init_batches']
