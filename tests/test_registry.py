"""mmzsq's registries hang below MMEngine's root, as mmyolo's and
mmrazor's do, and ``type='mmzsq.X'`` resolves from any scope."""
import torch.nn as nn
from mmengine.registry import DefaultScope

from mmzsq.registry import (HOOKS, LOOPS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS,
                            OPTIM_WRAPPERS, TASK_UTILS, TRANSFORMS)


@MODELS.register_module(name='_RegistryProbe', force=True)
class _RegistryProbe(nn.Module):
    pass


def test_registries_are_children_of_mmengine_root():
    import mmengine.registry as root
    for reg, up in ((MODELS, root.MODELS), (HOOKS, root.HOOKS),
                    (LOOPS, root.LOOPS), (TASK_UTILS, root.TASK_UTILS),
                    (TRANSFORMS, root.TRANSFORMS),
                    (OPTIM_WRAPPERS, root.OPTIM_WRAPPERS),
                    (OPTIM_WRAPPER_CONSTRUCTORS,
                     root.OPTIM_WRAPPER_CONSTRUCTORS)):
        assert reg.parent is up and reg.scope == 'mmzsq'
        assert up._search_child('mmzsq') is reg
        assert reg._locations, reg.name


def test_no_registry_is_empty():
    """Every registry has components once its locations are imported."""
    for reg in (MODELS, HOOKS, LOOPS, TASK_UTILS, TRANSFORMS,
                OPTIM_WRAPPERS, OPTIM_WRAPPER_CONSTRUCTORS):
        reg.import_from_location()
        assert len(reg.module_dict) > 0, reg.name
    assert LOOPS.get('ZSQTrainLoop') and LOOPS.get('SynthesisLoop')
    assert HOOKS.get('AdaptiveLabelSamplingHook')


def test_mmzsq_types_resolve_from_upstream_scopes():
    """`type='mmzsq.X'` builds from mmyolo-, mmdet- and mmrazor-scoped
    registries."""
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmrazor.registry import MODELS as MMRAZOR_MODELS
    from mmyolo.registry import MODELS as MMYOLO_MODELS
    for scope, reg in (('mmyolo', MMYOLO_MODELS), ('mmdet', MMDET_MODELS),
                       ('mmrazor', MMRAZOR_MODELS)):
        with DefaultScope.overwrite_default_scope(scope):
            assert isinstance(reg.build(dict(type='mmzsq._RegistryProbe')),
                              _RegistryProbe), scope


def test_unprefixed_names_resolve_in_the_default_scope():
    """Inside our components an upstream name needs no prefix: the build
    switches to the current default scope's registry."""
    with DefaultScope.overwrite_default_scope('mmrazor'):
        assert MODELS.build(dict(type='KLDivergence')).__class__.__name__ \
            == 'KLDivergence'
    with DefaultScope.overwrite_default_scope('mmyolo'):
        assert TASK_UTILS.build(dict(type='mmzsq.RandomBoxSampler'))
