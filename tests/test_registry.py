import torch.nn as nn
from mmengine.registry import DefaultScope

from mmzsq.registry import DATASETS, MODELS


@MODELS.register_module(name='_RegistryProbe', force=True)
class _RegistryProbe(nn.Module):
    pass


def test_mmzsq_types_resolve_from_upstream_scopes():
    """`type='mmzsq.X'` builds from mmyolo-, mmdet- and mmrazor-scoped
    registries (mmyolo's hang directly below mmengine's root)."""
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmrazor.registry import MODELS as MMRAZOR_MODELS
    from mmyolo.registry import MODELS as MMYOLO_MODELS
    for scope, reg in (('mmyolo', MMYOLO_MODELS), ('mmdet', MMDET_MODELS),
                       ('mmrazor', MMRAZOR_MODELS)):
        with DefaultScope.overwrite_default_scope(scope):
            assert isinstance(reg.build(dict(type='mmzsq._RegistryProbe')),
                              _RegistryProbe), scope


def test_unscoped_lookup_falls_back_to_parents():
    """Inside the mmzsq scope, upstream names need no prefix."""
    assert MODELS.get('KLDivergence') is not None  # mmrazor
    assert DATASETS.get('CocoDataset') is not None  # mmdet
