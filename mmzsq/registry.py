"""mmzsq registries.

Each is a child of the upstream registry it extends, so an mmzsq config can
name upstream components without a prefix, and any config (whatever its
``default_scope``) can name ours as ``type='mmzsq.X'``.  ``locations`` make
the components import themselves on first lookup.
"""
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import LOOPS as MMDET_LOOPS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmdet.registry import VISUALIZERS as MMDET_VISUALIZERS
from mmengine.registry import Registry
from mmrazor.registry import MODELS as MMRAZOR_MODELS

MODELS = Registry('model', parent=MMRAZOR_MODELS, scope='mmzsq',
                  locations=['mmzsq.models'])
TASK_UTILS = Registry('task util', parent=MMDET_TASK_UTILS, scope='mmzsq',
                      locations=['mmzsq.models', 'mmzsq.datasets'])
DATASETS = Registry('dataset', parent=MMDET_DATASETS, scope='mmzsq',
                    locations=['mmzsq.datasets'])
TRANSFORMS = Registry('transform', parent=MMDET_TRANSFORMS, scope='mmzsq',
                      locations=['mmzsq.datasets'])
HOOKS = Registry('hook', parent=MMDET_HOOKS, scope='mmzsq',
                 locations=['mmzsq.engine'])
LOOPS = Registry('loop', parent=MMDET_LOOPS, scope='mmzsq',
                 locations=['mmzsq.engine'])
METRICS = Registry('metric', parent=MMDET_METRICS, scope='mmzsq',
                   locations=['mmzsq.evaluation'])
VISUALIZERS = Registry('visualizer', parent=MMDET_VISUALIZERS, scope='mmzsq',
                       locations=['mmzsq.visualization'])


def _reachable_from_root(*registries: Registry) -> None:
    """Let ``type='mmzsq.X'`` resolve from any scope.

    mmengine looks a ``scope.`` prefix up among the *root* registry's direct
    children only, and ours are grandchildren (root → mmrazor/mmdet →
    mmzsq), so e.g. mmyolo's registry could not find ``mmzsq.X``.  Listing
    them under the root too (their parent stays the same) fixes the lookup.
    """
    for reg in registries:
        root = reg._get_root_registry()
        if root is not reg:
            root._children.setdefault(reg.scope, reg)


_reachable_from_root(MODELS, TASK_UTILS, DATASETS, TRANSFORMS, HOOKS, LOOPS,
                     METRICS, VISUALIZERS)
