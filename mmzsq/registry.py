"""mmzsq registries.

Like mmyolo's and mmrazor's, each is a child of MMEngine's root registry
of its kind, with the ``mmzsq`` scope: any config, whatever its
``default_scope`` (mmyolo, mmdet), names our components as
``type='mmzsq.X'``, and an unprefixed name inside our components resolves
in the current default scope.  ``locations`` make the components import
themselves on first lookup.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmzsq',
                  locations=['mmzsq.models', 'mmzsq.deployment'])
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS,
                      scope='mmzsq', locations=['mmzsq.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS,
                      scope='mmzsq', locations=['mmzsq.datasets'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmzsq',
                 locations=['mmzsq.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='mmzsq',
                 locations=['mmzsq.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS,
                          scope='mmzsq', locations=['mmzsq.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='mmzsq',
    locations=['mmzsq.engine'])
