"""CompiledKernel: compiled where it runs, an eager fallback where not."""
import torch
from mmengine.logging import MMLogger

from mmzsq.utils.compiled_kernel import CompiledKernel


def _double(x, k: float):
    return x * k, (x * x).sum()


def test_compiles_matches_and_is_tried_once_per_device_type():
    kern = CompiledKernel(_double, lambda d: (torch.ones(4, device=d), 2.0),
                          'demo', "kernel='eager'")
    assert kern.ready('cpu') and kern.ready(torch.device('cpu'))
    assert list(kern._ready) == ['cpu']
    x = torch.randn(3, 5)
    got, want = kern(x, 3.0), _double(x, 3.0)
    assert torch.equal(got[0], want[0])
    assert torch.allclose(got[1], want[1])


def test_a_kernel_that_fails_is_reported_once_and_not_ready(capsys):
    MMLogger.get_instance('mmzsq_test_compiled_kernel')  # a current logger
    calls = []

    def broken(device):
        calls.append(device)
        raise RuntimeError('no compiler here')

    kern = CompiledKernel(_double, broken, 'demo', "kernel='eager'")
    assert not kern.ready('cpu')
    assert not kern.ready('cpu')
    assert len(calls) == 1  # tried once
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count('no compiler here') == 1
    assert "kernel='eager'" in text
