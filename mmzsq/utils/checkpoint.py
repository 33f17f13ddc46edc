"""Reading checkpoints and checking that they fit a model, strictly.

mmengine loads with ``strict=False`` everywhere (``Runner.load_checkpoint``,
``load_from``): a checkpoint of another detector, size or class count only
logs a wall of "missing keys" / "size mismatch" lines and the run goes on
with random weights (a garbage synthetic set, ``coco/bbox_mAP: 0.0000``).
Every mmzsq entry point that loads weights goes through :func:`read_checkpoint`
and :func:`check_state_dict` instead, which raise one-line
:class:`~mmzsq.utils.errors.CheckpointError` s naming the fix.
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Iterable, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmzsq.utils.errors import CheckpointError

#: mmengine's default key revision (DDP's ``module.`` prefix)
REVISE_KEYS = [(r'^module\.', '')]
#: state-dict keys of a QuantDistillAlgorithm's student / teacher
STUDENT, TEACHER = 'architecture.', 'teacher.'
#: LSQ fake-quantizer state (absent from float checkpoints)
FAKE_QUANT = ('fake_quant.',)
_CONVERT = ('pass a .pth saved by tools/train.py, or convert Ultralytics '
            'weights (.pt) first with tools/model_converters/'
            'yolov5_to_mmyolo.py (YOLOv5) or yolo11_to_mmyolo.py (YOLO11)')
FP_CONFIG_EXAMPLE = 'configs/yolov5/yolov5_n-v61_fp_coco.py'
ZSQ_CONFIG_EXAMPLE = 'configs/zsq/yolov5_n_w8a8.py'


def _first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f'{type(e).__name__}: {msg[0] if msg else ""}'.rstrip(': ')


def _why_unreadable(e: BaseException) -> str:
    msg = str(e)
    if 'Weights only load failed' not in msg:
        return _first_line(e)
    m = re.search(r'Unsupported global: GLOBAL ([\w.]+)', msg)
    if m and m.group(1).startswith(('models.', 'ultralytics.')):
        return f'an Ultralytics model pickle ({m.group(1)}), not a state dict'
    if m:
        return f'it pickles {m.group(1)}, which torch.load refuses to ' \
            'unpickle with weights_only'
    return 'a pickle that is not a torch.save state dict'


def check_checkpoint(path: str) -> None:
    """A :class:`CheckpointError` naming the fix unless ``path`` is a
    file (checked before anything is built)."""
    if not path or not osp.isfile(osp.expanduser(path)):
        raise CheckpointError(f'checkpoint not found: {path}; {_CONVERT}, '
                              'or fix the path')


def read_checkpoint(path: str, map_location='cpu') -> dict:
    """The checkpoint dict at ``path`` (local file or URL, through mmengine's
    :class:`CheckpointLoader`); a :class:`CheckpointError` when it is not a
    PyTorch checkpoint holding a dict of weights."""
    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        ckpt = CheckpointLoader.load_checkpoint(
            path, map_location=map_location, logger='silent')
    except FileNotFoundError:
        raise CheckpointError(f'checkpoint not found: {path}; {_CONVERT}, '
                              'or fix the path') from None
    except Exception as e:  # torch.load on a text/empty/foreign file
        raise CheckpointError(
            f'{path} is not a PyTorch checkpoint mmzsq can load '
            f'({_why_unreadable(e)}); {_CONVERT}') from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f'{path} is not a PyTorch checkpoint of weights (it holds a '
            f'{type(ckpt).__name__}, not a dict); {_CONVERT}')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not any(
            torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(
            f'{path} is not a PyTorch checkpoint of weights (no tensors in '
            f'its {"state_dict" if "state_dict" in ckpt else "dict"}); '
            f'{_CONVERT}')
    return ckpt


def state_dict_of(ckpt: dict, revise_keys=REVISE_KEYS) -> 'OrderedDict':
    """``ckpt['state_dict']`` (or the dict itself) with mmengine's
    ``revise_keys`` applied, as in ``mmengine.runner.load_checkpoint``.

    mmengine applies ``revise_keys`` only inside
    ``_load_checkpoint_to_model``, i.e. while it loads (``strict=False``,
    or ``strict=True`` raising after a partial load); :func:`load_checked`
    checks the revised keys *before* anything is loaded, then loads with
    that very function."""
    state = ckpt.get('state_dict', ckpt)
    for p, r in revise_keys:
        state = OrderedDict((re.sub(p, r, k), v) for k, v in state.items())
    return state


def is_quantized_state(state: Dict) -> bool:
    """A state dict of an mmzsq QuantDistillAlgorithm (student + teacher)."""
    return any(k.startswith(STUDENT) for k in state)


def detector_state(state: Dict) -> Dict:
    """The float detector's weights in a float or an mmzsq state dict (the
    student's, ``architecture.*``, of the latter)."""
    if is_quantized_state(state):
        n = len(STUDENT)
        return OrderedDict((k[n:], v) for k, v in state.items()
                           if k.startswith(STUDENT))
    return state


def unwrap(model: nn.Module) -> nn.Module:
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return key.endswith('num_batches_tracked') or any(s in key
                                                      for s in ignore)


def compare_state(own: Dict, state: Dict, ignore: Sequence[str] = ()
                  ) -> Tuple[list, list, list]:
    """(missing, unexpected, shape-mismatched) keys of ``state`` against a
    model's ``own`` state dict; keys containing an ``ignore`` string and BN
    ``num_batches_tracked`` counters are not counted."""
    missing = [k for k in own if k not in state and not _ignored(k, ignore)]
    unexpected = [k for k in state
                  if k not in own and not _ignored(k, ignore)]
    shapes = [(k, tuple(state[k].shape), tuple(own[k].shape))
              for k in state if k in own and torch.is_tensor(state[k])
              and torch.is_tensor(own[k]) and state[k].shape != own[k].shape]
    return missing, unexpected, shapes


def _examples(keys, n=3) -> str:
    return ', '.join(keys[:n]) + (', ...' if len(keys) > n else '')


def mismatch_summary(missing, unexpected, shapes) -> str:
    """'3 weights missing (e.g. a, b), ...' on one line."""
    parts = []
    if shapes:
        k, got, want = shapes[0]
        parts.append(f'{len(shapes)} of another shape (e.g. {k}: {got} in '
                     f'the checkpoint, {want} in the model)')
    if missing:
        parts.append(f'{len(missing)} weights missing from the checkpoint '
                     f'(e.g. {_examples(missing)})')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected (e.g. '
                     f'{_examples(unexpected)})')
    return '; '.join(parts)


_KIND_FIX = dict(
    test=dict(
        float_ckpt='test it with the float config (e.g. '
        f'{FP_CONFIG_EXAMPLE}) or pass a checkpoint saved by tools/train.py '
        'with this config',
        quant_ckpt='test it with the configs/zsq/ config it was trained with '
        f'(e.g. {ZSQ_CONFIG_EXAMPLE}) or pass a float checkpoint of this '
        'detector'),
    train=dict(
        float_ckpt='to start QAT from it set model.init_checkpoint (not '
        'load_from / --resume), or resume from a checkpoint saved by '
        'tools/train.py with this config',
        quant_ckpt='resume it with the configs/zsq/ config it was trained '
        'with, or set load_from to a float checkpoint of this detector'))


def check_state_dict(model: nn.Module, state: Dict, ckpt: str,
                     target: str, fix: str,
                     ignore: Sequence[str] = (),
                     config: Optional[str] = None,
                     use: str = 'test') -> None:
    """Raise a one-line :class:`CheckpointError` unless ``state`` sets every
    weight of ``model`` with the right shape and nothing else.

    ``target`` names what is loaded (``'the model of <config>'``, ``'the
    Stage I teacher'``), ``fix`` the remedy for a generic mismatch.  With
    ``config`` given, a float checkpoint for a quantized (mmzsq) model and
    the reverse get their own message naming the config to use (for
    ``use='test'`` or ``'train'``).
    """
    own = unwrap(model).state_dict()
    missing, unexpected, shapes = compare_state(own, state, ignore)
    if not (missing or unexpected or shapes):
        return
    q_model, q_ckpt = is_quantized_state(own), is_quantized_state(state)
    if config is not None and q_model != q_ckpt:
        kinds = ('float detector', 'quantized (mmzsq)')
        raise CheckpointError(
            f'{ckpt} is a {kinds[q_ckpt]} checkpoint but {config} is a '
            f'{kinds[q_model]} config; '
            f'{_KIND_FIX[use]["quant_ckpt" if q_ckpt else "float_ckpt"]}')
    if q_ckpt and not q_model:
        raise CheckpointError(
            f'{ckpt} is a quantized (mmzsq) checkpoint, not a float detector '
            f'checkpoint, so it does not fit {target}; {fix}')
    raise CheckpointError(
        f'{ckpt} does not fit {target}: '
        f'{mismatch_summary(missing, unexpected, shapes)}; {fix}')


def load_checked(model: nn.Module, path: str, target: str, fix: str,
                 ignore: Sequence[str] = (), config: Optional[str] = None,
                 map_location='cpu') -> dict:
    """Read ``path``, :func:`check_state_dict` it against ``model`` and load
    it (mmengine's loader, so ``revise_keys`` and BN metadata behave as in
    ``Runner.load_checkpoint``); returns the checkpoint dict."""
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    ckpt = read_checkpoint(path, map_location)
    check_state_dict(model, state_dict_of(ckpt), path, target, fix,
                     ignore=ignore, config=config)
    _load_checkpoint_to_model(unwrap(model), ckpt, strict=False,
                              logger='silent', revise_keys=REVISE_KEYS)
    print_log(f'Load checkpoint from {path}', logger='current')
    return ckpt
