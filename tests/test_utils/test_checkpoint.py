"""Checkpoints that are not checkpoints, or do not fit the model, are
refused with one-line CheckpointErrors naming the fix (QAT init, Stage I
teacher, tools/test.py)."""
import copy
import os
import os.path as osp
import pickle
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from mmzsq.utils.checkpoint import (check_state_dict, load_checked,
                                    read_checkpoint)
from mmzsq.utils.errors import CheckpointError
from tests.conftest import ROOT

FP_CFG = 'configs/yolov5/yolov5_n-v61_fp_coco.py'
ZSQ_CFG = 'configs/zsq/yolov5_n_w8a8.py'


def _one_line(e):
    msg = str(e.value)
    assert '\n' not in msg, msg
    return msg


def _yolo_cfg(widen=0.25, num_classes=None):
    from mmengine.config import Config
    arch = Config.fromfile(osp.join(ROOT, FP_CFG)).model
    arch.backbone.widen_factor = widen
    arch.neck.widen_factor = widen
    arch.bbox_head.head_module.widen_factor = widen
    if num_classes:
        arch.bbox_head.head_module.num_classes = num_classes
    return arch


def _yolo(widen=0.25, num_classes=None):
    from mmengine.registry import init_default_scope

    from mmzsq.registry import MODELS
    init_default_scope('mmyolo')
    return MODELS.build(_yolo_cfg(widen, num_classes))


def _algo(ckpt=None, widen=0.25, init=True):
    from mmengine.registry import init_default_scope

    from mmzsq.registry import MODELS
    init_default_scope('mmyolo')
    algo = MODELS.build(dict(
        type='mmzsq.QuantDistillAlgorithm', architecture=_yolo_cfg(widen),
        init_checkpoint=ckpt,
        quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=8, a_bits=8)))
    if init:
        algo.init_weights()
    return algo


def _save(obj, path):
    torch.save(obj, path)
    return str(path)


# ------------------------------------------------------------ 1. reading
def test_non_checkpoint_files_are_refused(tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('epoch 12: mAP 0.33\n')  # was `KeyError: 101`
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    plain = tmp_path / 'list.pkl'
    plain.write_bytes(pickle.dumps([1, 2, 3]))
    cases = [text, empty, plain, _save([torch.zeros(1)], tmp_path / 'l.pth'),
             _save({'epoch': 3}, tmp_path / 'no_weights.pth')]
    for path in cases:
        with pytest.raises(CheckpointError) as e:
            read_checkpoint(str(path))
        msg = _one_line(e)
        assert msg.startswith(f'{path} is not a PyTorch checkpoint'), msg
        assert 'tools/train.py' in msg and 'yolov5_to_mmyolo.py' in msg
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        read_checkpoint(str(tmp_path / 'nope.pth'))
    # the QAT init goes through the same reader
    with pytest.raises(CheckpointError, match='is not a PyTorch checkpoint'):
        _algo(str(text))


# --------------------------------------------------- 2. QAT student/teacher
def test_qat_init_refuses_missing_keys(tmp_path):
    state = _yolo().state_dict()
    drop = [k for k in state if k.startswith('bbox_head.')]
    for k in drop:
        del state[k]
    path = _save({'state_dict': state}, tmp_path / 'headless.pth')
    with pytest.raises(CheckpointError) as e:
        _algo(path)
    msg = _one_line(e)
    assert msg.startswith(f'{path} does not fit the student '
                          '(model.architecture): ')
    assert f'{len(drop)} weights missing from the checkpoint (e.g. ' \
        'bbox_head.' in msg
    assert 'model.init_checkpoint' in msg and 'num_classes' in msg


def test_qat_init_refuses_unexpected_keys(tmp_path):
    state = _yolo().state_dict()
    state['bbox_head.extra.weight'] = torch.zeros(3)
    state['neck.spare.bias'] = torch.zeros(3)
    path = _save({'state_dict': state}, tmp_path / 'extra.pth')
    with pytest.raises(CheckpointError) as e:
        _algo(path)
    msg = _one_line(e)
    assert '2 unexpected (e.g. bbox_head.extra.weight, neck.spare.bias)' \
        in msg, msg
    assert 'missing' not in msg


def test_qat_init_refuses_another_size_and_class_count(tmp_path):
    path = _save({'state_dict': _yolo(widen=0.125).state_dict()},
                 tmp_path / 'smaller.pth')
    with pytest.raises(CheckpointError) as e:
        _algo(path)
    assert 'of another shape (e.g. backbone.' in _one_line(e)
    path = _save({'state_dict': _yolo(num_classes=3).state_dict()},
                 tmp_path / 'three.pth')
    with pytest.raises(CheckpointError, match='6 of another shape') as e:
        _algo(path)  # only the class logits differ (3 levels, w + b)
    assert 'convs_pred.0.weight' in str(e.value)


def test_qat_init_accepts_float_and_qat_checkpoints(tmp_path):
    """Fake-quant state is the one exception: a float checkpoint has none,
    and a QAT checkpoint's student (``architecture.*``) has it."""
    fp = _yolo()
    path = _save({'state_dict': fp.state_dict(), 'meta': {}},
                 tmp_path / 'fp.pth')
    algo = _algo(path)
    w = 'backbone.stem.conv.weight'
    assert torch.equal(algo.architecture.state_dict()[w], fp.state_dict()[w])
    assert torch.equal(algo.teacher.state_dict()[w], fp.state_dict()[w])
    ddp = {f'module.{k}': v for k, v in algo.state_dict().items()}
    path = _save({'state_dict': ddp}, tmp_path / 'qat.pth')
    again = _algo(path)
    assert torch.equal(again.architecture.state_dict()[w],
                       fp.state_dict()[w])


# ------------------------------------------------------------ 3. tools
def test_test_py_refuses_float_checkpoint_with_zsq_config(
        yolov5n_mmyolo_ckpt, tmp_path):
    ckpt = yolov5n_mmyolo_ckpt
    out = subprocess.run(
        [sys.executable, 'tools/test.py', ZSQ_CFG, ckpt, '--work-dir',
         str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        f'error: {ckpt} is a float detector checkpoint but {ZSQ_CFG} is a '
        'quantized (mmzsq) config; test it with the float config (e.g. '
        f'{FP_CFG}) or pass a checkpoint saved by tools/train.py with this '
        'config'), last
    assert 'Traceback' not in out.stderr
    assert 'bbox_mAP' not in out.stdout + out.stderr  # refused before testing


def test_train_py_resume_refuses_float_checkpoint(yolov5n_mmyolo_ckpt,
                                                  tmp_path):
    """--resume / load_from get the same check, before Stage I starts."""
    ckpt = yolov5n_mmyolo_ckpt
    out = subprocess.run(
        [sys.executable, 'tools/train.py', ZSQ_CFG, '--resume', ckpt,
         '--work-dir', str(tmp_path), '--cfg-options',
         'model.init_checkpoint=None'], cwd=ROOT, capture_output=True,
        text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f'error: {ckpt} is a float detector checkpoint but {ZSQ_CFG} is a '
        'quantized (mmzsq) config; to start QAT from it set '
        'model.init_checkpoint'), last
    assert 'Traceback' not in out.stderr
    assert 'synthesising' not in out.stdout + out.stderr  # no Stage I


def test_tool_check_reverse_and_other_mismatches(tmp_path):
    """check_runner_checkpoint (tools/test.py, tools/train.py) on the other
    cases, in-process."""
    from mmzsq.utils.cli import check_runner_checkpoint
    algo = _algo(init=False)
    qat = _save({'state_dict': algo.state_dict()}, tmp_path / 'qat.pth')
    fp_runner = SimpleNamespace(model=_yolo())
    with pytest.raises(CheckpointError) as e:
        check_runner_checkpoint(fp_runner, qat, FP_CFG)
    assert _one_line(e) == (
        f'{qat} is a quantized (mmzsq) checkpoint but {FP_CFG} is a float '
        'detector config; test it with the configs/zsq/ config it was '
        f'trained with (e.g. {ZSQ_CFG}) or pass a float checkpoint of this '
        'detector')
    # train.py --resume / load_from: float checkpoint for a zsq config
    fp = _save({'state_dict': fp_runner.model.state_dict()},
               tmp_path / 'fp.pth')
    with pytest.raises(CheckpointError, match='set model.init_checkpoint'):
        check_runner_checkpoint(SimpleNamespace(model=algo), fp, ZSQ_CFG,
                                use='train')
    # another size, quantized on both sides: counts + examples
    small = _save({'state_dict': _algo(widen=0.125, init=False)
                   .state_dict()}, tmp_path / 'small.pth')
    with pytest.raises(CheckpointError) as e:
        check_runner_checkpoint(SimpleNamespace(model=algo), small, ZSQ_CFG)
    msg = _one_line(e)
    assert msg.startswith(f'{small} does not fit the model of {ZSQ_CFG}: ')
    assert 'of another shape (e.g. architecture.' in msg
    assert 'use the config it was trained' in msg
    # a fitting checkpoint passes (fake-quant state included)
    check_runner_checkpoint(SimpleNamespace(model=algo), qat, ZSQ_CFG)
    check_runner_checkpoint(fp_runner, fp, FP_CFG)


def test_load_checked_loads_what_it_checked(tmp_path):
    src, dst = _yolo(), _yolo()
    path = _save({'state_dict': {f'module.{k}': v
                                 for k, v in src.state_dict().items()}},
                 tmp_path / 'ddp.pth')
    load_checked(dst, path, 'the model', 'fix it')
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    state = copy.deepcopy(src.state_dict())
    state.pop('backbone.stem.conv.weight')
    with pytest.raises(CheckpointError, match='1 weights missing'):
        check_state_dict(dst, state, 'x.pth', 'the model', 'fix it')
