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


def _expose_at_root(*registries):
    """Make ``type='mmzsq.X'`` resolvable from any scope.

    MMEngine resolves a scoped key only among the *direct* children of the
    root registry, but ours are grandchildren (root -> mmrazor/mmdet ->
    mmzsq), so e.g. an mmyolo-scoped runner could not find ``mmzsq.X``.  We
    also list each registry among its root's children (its parent, used for
    unscoped look-ups, stays mmrazor/mmdet).
    """
    for reg in registries:
        root = reg._get_root_registry()
        root._children.setdefault(reg.scope, reg)


_expose_at_root(MODELS, TASK_UTILS, DATASETS, TRANSFORMS, HOOKS, LOOPS,
                METRICS, VISUALIZERS)
