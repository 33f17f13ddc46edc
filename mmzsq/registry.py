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

# MMEngine resolves ``'scope.X'`` from another scope only through the *root*
# registry's direct children; ours hang below mmdet/mmrazor, so e.g. an
# mmyolo-scoped config (whose registries descend from mmengine directly)
# could not find ``type='mmzsq.X'``.  Make each mmzsq registry reachable from
# its root as well (the parent chain is unchanged).
for _reg in (MODELS, TASK_UTILS, DATASETS, TRANSFORMS, HOOKS, LOOPS, METRICS,
             VISUALIZERS):
    _reg._get_root_registry()._children.setdefault('mmzsq', _reg)
del _reg
