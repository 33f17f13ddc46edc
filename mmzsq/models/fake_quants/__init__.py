from .lsq_fake_quantize import (LSQFakeQuantize, check_bits,
                                check_init_batches, check_kernel,
                                check_percentile, check_step_init)

__all__ = ['LSQFakeQuantize', 'check_bits', 'check_init_batches',
           'check_kernel', 'check_percentile', 'check_step_init']
