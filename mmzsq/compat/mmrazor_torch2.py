"""Make mmrazor 1.0.0 importable on torch 2.x.

mmrazor 1.0.0 wraps its ``torch.ao.quantization`` imports in ``try/except``
and, when any name is missing, replaces *all* of them by placeholders; the
first use then fails with ``torch>=1.13 is not installed properly``.  On
torch 2.x the names it wants were renamed (``reverse2`` → ``_reverse2``...),
``backend_config.utils`` is no longer imported by its package, and
``BackendPatternConfig`` lost a few private setters.  We restore exactly those
names before mmrazor is imported.  mmrazor's torch.fx quantizers remain
unusable; mmzsq does not use them (it quantizes by eager module replacement).
"""
import importlib

_ALIASES = {
    'reverse2': '_reverse2',
    'reverse3': '_reverse3',
    'reverse_sequential_wrapper2': '_sequential_wrapper2',
}
_NOOP_SETTERS = (
    '_set_overwrite_output_fake_quantize',
    '_set_overwrite_output_observer',
    '_set_input_output_observed',
    '_set_num_tensor_args_to_observation_type',
)


def patch_torch_for_mmrazor() -> list:
    """Add the torch.ao names mmrazor 1.0.0 imports; return what was added."""
    added = []
    try:
        fmm = importlib.import_module(
            'torch.ao.quantization.fuser_method_mappings')
        backend_config = importlib.import_module(
            'torch.ao.quantization.backend_config')
    except ImportError:  # torch without ao.quantization: nothing to patch
        return added
    for public, private in _ALIASES.items():
        if not hasattr(fmm, public) and hasattr(fmm, private):
            setattr(fmm, public, getattr(fmm, private))
            added.append(f'fuser_method_mappings.{public}')
    # mmrazor does `from torch.ao.quantization.backend_config.utils import ..`
    # after `import torch.ao.quantization.backend_config` only.
    importlib.import_module('torch.ao.quantization.backend_config.utils')
    bpc = backend_config.BackendPatternConfig
    for name in _NOOP_SETTERS:
        if not hasattr(bpc, name):
            setattr(bpc, name, _noop_setter)
            added.append(f'BackendPatternConfig.{name}')
    return added


def _noop_setter(self, *args, **kwargs):
    """Setter removed from torch; mmrazor's fx backends only chain it."""
    return self
