from .label_samplers import *  # noqa: F401,F403
from .synthetic_det_dataset import SyntheticDetDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['SyntheticDetDataset']
