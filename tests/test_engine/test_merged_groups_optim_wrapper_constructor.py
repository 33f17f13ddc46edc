"""One param group per lr setting: the same per-parameter settings, the
same training, far fewer groups than MMEngine's constructor gives."""
import copy

import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

from mmzsq.engine.optimizers import merge_param_groups
from mmzsq.registry import OPTIM_WRAPPER_CONSTRUCTORS

PARAMWISE = dict(custom_keys={'quant.': dict(lr_mult=1.0),
                              '.weight': dict(lr_mult=0.1),
                              '.bias': dict(lr_mult=0.1, decay_mult=0.0)})


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        self.quant = nn.ParameterDict(
            {f's{i}': nn.Parameter(torch.tensor([0.1 * (i + 1)]))
             for i in range(3)})

    def forward(self, x):
        y = self.bn(self.conv(x)).mean((2, 3)) * self.quant['s0']
        return self.fc(y) * self.quant['s1'] + self.quant['s2']


def _wrapper(model, constructor=None, fused=False):
    cfg = dict(type='OptimWrapper', clip_grad=dict(max_norm=10.0),
               optimizer=dict(type='Adam', lr=1e-2, weight_decay=1e-3,
                              fused=fused),
               paramwise_cfg=PARAMWISE)
    if constructor:
        cfg['constructor'] = constructor
    return build_optim_wrapper(model, cfg)


def _settings(optimizer, model):
    """name -> (lr, weight_decay) of every parameter."""
    name = {id(p): n for n, p in model.named_parameters()}
    return {name[id(p)]: (g['lr'], g['weight_decay'])
            for g in optimizer.param_groups for p in g['params']}


def test_same_settings_per_parameter_in_fewer_groups():
    model = _Net()
    ours = _wrapper(model, 'mmzsq.MergedGroupsOptimWrapperConstructor')
    default = _wrapper(model)
    n = len(list(model.parameters()))
    assert len(default.optimizer.param_groups) == n
    assert len(ours.optimizer.param_groups) == 3  # quant, weights, biases
    assert _settings(ours.optimizer, model) == \
        _settings(default.optimizer, model)
    # the first group (the logged lr) is the first parameter's, as before
    assert ours.optimizer.param_groups[0]['params'][0] is model.conv.weight
    assert ours.get_lr()['lr'][0] == default.get_lr()['lr'][0]


def test_training_matches_mmengines_constructor():
    """Adam + clipping + a warmup-then-cosine schedule: the same weights
    after 6 steps, fused over the merged groups or per parameter."""
    torch.manual_seed(0)
    base = _Net()
    x = torch.randn(4, 3, 8, 8)
    results = []
    for constructor, fused in ((None, False),
                               ('mmzsq.MergedGroupsOptimWrapperConstructor',
                                True)):
        model = copy.deepcopy(base)
        wrapper = _wrapper(model, constructor, fused)
        scheds = [LinearLR(wrapper, start_factor=0.1, by_epoch=False,
                           begin=0, end=3),
                  CosineAnnealingLR(wrapper, T_max=6, by_epoch=False,
                                    begin=0, end=6)]
        for _ in range(6):
            wrapper.update_params(model(x).square().mean())
            for s in scheds:
                s.step()
        results.append((model, _settings(wrapper.optimizer, model)))
    (m0, lr0), (m1, lr1) = results
    assert lr0 == lr1
    for (k, p0), p1 in zip(m0.named_parameters(), m1.parameters()):
        assert torch.allclose(p0, p1, rtol=1e-5, atol=1e-7), k
    assert not torch.equal(m0.conv.weight, base.conv.weight)


def test_merge_keeps_distinct_settings_apart():
    a, b, c, d = (nn.Parameter(torch.zeros(1)) for _ in range(4))
    groups = merge_param_groups([dict(params=[a], lr=0.1),
                                 dict(params=[b], lr=0.2),
                                 dict(params=[c], lr=0.1),
                                 dict(params=[d], lr=0.1, weight_decay=0)])
    assert [(g['lr'], len(g['params'])) for g in groups] == \
        [(0.1, 2), (0.2, 1), (0.1, 1)]
    assert OPTIM_WRAPPER_CONSTRUCTORS.get(
        'MergedGroupsOptimWrapperConstructor')
