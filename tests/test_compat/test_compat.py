"""Each compat patch is needed (the unpatched library fails) and works."""
import importlib
import subprocess
import sys

import pytest
import torch

from mmzsq.compat import mmrazor_torch2


def test_mmrazor_patch_is_needed_on_this_torch():
    """In a fresh interpreter without mmzsq, mmrazor's LSQ pieces fail with
    `torch>=1.13 is not installed properly` (at import or on use)."""
    code = ('from mmrazor.models import LearnableFakeQuantize as L, '
            'LSQObserver as O\n'
            'try:\n    L(O)\nexcept Exception as e:\n'
            '    print("FAILS:", e)\nelse:\n    print("WORKS")')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    text = out.stdout + out.stderr
    assert 'WORKS' not in out.stdout and 'torch>=1.13' in text, text


def test_mmrazor_patch_makes_lsq_work():
    fmm = importlib.import_module(
        'torch.ao.quantization.fuser_method_mappings')
    assert fmm.reverse2 is fmm._reverse2
    assert mmrazor_torch2.patch_torch_for_mmrazor() == []  # idempotent
    from mmrazor.models import (BaseAlgorithm, BaseQuantizer,
                                ConfigurableDistiller, KLDivergence,
                                LearnableFakeQuantize, LSQObserver)
    assert all((BaseAlgorithm, BaseQuantizer, ConfigurableDistiller,
                KLDivergence))
    fq = LearnableFakeQuantize(LSQObserver, quant_min=-128, quant_max=127,
                               dtype=torch.qint8,
                               qscheme=torch.per_tensor_symmetric)
    x = torch.randn(64, requires_grad=True)
    y = fq(x)  # static estimate: 2 mean|x| / sqrt(127)
    assert torch.allclose(fq.scale, 2 * x.abs().mean() / 127**0.5)
    fq.enable_param_learning()
    y = fq(x)
    y.sum().backward()
    assert fq.scale.grad is not None and x.grad is not None
    assert len(torch.unique(y.detach() / fq.scale.detach())) <= 256


def test_mmrazor_engine_and_register_all_modules():
    """mmrazor's engine imports on torch 2.x (with our patch) and registers
    its loops and hooks."""
    import mmrazor.engine  # noqa: F401
    from mmrazor.registry import HOOKS, LOOPS
    from mmrazor.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    assert LOOPS.get('SingleTeacherDistillValLoop').__name__ == \
        'SingleTeacherDistillValLoop'
    assert LOOPS.get('DartsIterBasedTrainLoop') is not None
    assert len(HOOKS.module_dict) > 0


def _mmengine_checkpoint(path):
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance('mmzsq_test_ckpt')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 0.5)
    save_checkpoint(
        dict(meta=dict(epoch=1, iter=2, seed=0),
             state_dict={'w': torch.ones(2)},
             message_hub=hub.state_dict()), str(path))


def test_checkpoint_patch_is_needed(tmp_path):
    """Without the allow-list, torch refuses an mmengine checkpoint."""
    _mmengine_checkpoint(tmp_path / 'a.pth')
    code = ('import torch; torch.load(%r)' % str(tmp_path / 'a.pth'))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode != 0 and 'Weights only load failed' in out.stderr


def test_checkpoint_patch_loads_mmengine_checkpoint(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    _mmengine_checkpoint(tmp_path / 'a.pth')
    ckpt = _load_checkpoint(str(tmp_path / 'a.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert buf.mean() == pytest.approx(1.0)


def test_checkpoint_patch_keeps_arbitrary_pickles_refused(tmp_path):
    import pickle
    torch.save({'os': subprocess.Popen}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / 'evil.pth')
