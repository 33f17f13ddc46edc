"""mmzsq model components (registered in ``mmzsq.registry.MODELS``)."""
from . import yolo11  # noqa: F401
from .algorithms import *  # noqa: F401,F403
from .fake_quants import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .quantizers import *  # noqa: F401,F403
