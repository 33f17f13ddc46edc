from .label_samplers import *  # noqa: F401,F403
