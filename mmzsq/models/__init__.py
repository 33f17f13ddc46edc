"""mmzsq model components (registered in ``mmzsq.registry.MODELS``)."""
from . import yolo11  # noqa: F401
from .losses import *  # noqa: F401,F403
