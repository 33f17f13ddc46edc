from .cpu_distributed import (CPUDistributedDataParallel,
                              prepare_cpu_distributed)
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403

__all__ = ['CPUDistributedDataParallel', 'prepare_cpu_distributed']
