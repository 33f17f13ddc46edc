"""bf16 Stage II on CPU: the forward autocasts, the weights and their
gradients stay fp32, and `tools/train.py --amp` picks the wrapper."""
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import OPTIM_WRAPPERS


def _wrapper(**kw):
    model = nn.Linear(8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, OPTIM_WRAPPERS.build(
        dict(type='mmzsq.CPUAutocastOptimWrapper', optimizer=opt, **kw))


def test_forward_in_bf16_step_in_fp32():
    model, wrapper = _wrapper()
    x = torch.randn(2, 8)
    with wrapper.optim_context(model):
        y = model(x)
    assert y.dtype == torch.bfloat16
    assert model(x).dtype == torch.float32  # outside the context
    before = model.weight.detach().clone()
    wrapper.update_params(y.float().square().mean())
    assert model.weight.dtype == torch.float32
    assert model.weight.grad is None or model.weight.grad.dtype == \
        torch.float32
    assert not torch.equal(model.weight, before)


def test_bad_dtype_is_a_config_error():
    from mmzsq.utils.errors import ConfigError
    with pytest.raises(ConfigError, match='bfloat16'):
        _wrapper(dtype='float64')


def test_train_amp_on_cpu_uses_the_cpu_wrapper(monkeypatch):
    from tools.train import use_amp
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper',
                                         loss_scale='dynamic')))
    use_amp(cfg)
    assert cfg.optim_wrapper.type == 'mmzsq.CPUAutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert 'loss_scale' not in cfg.optim_wrapper
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    use_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
