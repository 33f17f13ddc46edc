from .eager_quantizer import (DEFAULT_SKIP_PATTERNS, EagerLSQQuantizer,
                              fake_quantizers, is_quantized)

__all__ = ['EagerLSQQuantizer', 'DEFAULT_SKIP_PATTERNS', 'fake_quantizers',
           'is_quantized']
