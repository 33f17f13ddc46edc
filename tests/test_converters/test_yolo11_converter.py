"""YOLO11 converter: Ultralytics' own YOLO11 vs ours, output for output.

``ultralytics`` is a test-only dependency, installed without its
dependencies (``requirements/tests-ultralytics.txt``): into
``$MMZSQ_ULTRALYTICS_DIR``, ``<venv>/ultralytics-tests`` (what
``tools/misc/install.sh`` does) or the venv itself.  Its model-building code
needs no torchvision, but ``import ultralytics`` reads torchvision's version
number, which the test supplies when torchvision is absent.  The tests that
need it skip when it cannot be imported.
"""
import importlib.metadata
import os
import os.path as osp
import sys
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.nn as nn

from mmzsq.converters.yolo11 import convert_yolo11
from mmzsq.converters.yolov5 import convert_yolov5

from tests.conftest import YOLOV5N_PT, needs_yolov5n

# max|ours - Ultralytics| <= ATOL + RTOL * max|Ultralytics| per output
# (float32, same fp16-rounded weights).  Measured: 0 (bitwise equal) on CPU
# with torch 2.13; the slack is for other BLAS/conv backends.
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope='session')
def ultralytics(tmp_path_factory):
    """Ultralytics' DetectionModel and strip_optimizer, or skip."""
    for d in (os.environ.get('MMZSQ_ULTRALYTICS_DIR'),
              osp.join(sys.prefix, 'ultralytics-tests')):
        if d and osp.isdir(osp.join(d, 'ultralytics')) and d not in sys.path:
            sys.path.append(d)  # appended: never shadows the venv's packages
    os.environ.setdefault('YOLO_OFFLINE', '1')  # no connectivity probe
    os.environ.setdefault('YOLO_CONFIG_DIR',
                          str(tmp_path_factory.mktemp('ultralytics_cfg')))
    real_version = importlib.metadata.version

    def version(name):
        try:
            return real_version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == 'torchvision':  # only read, for a compat. warning
                return '0.0.0'
            raise

    try:
        with mock.patch('importlib.metadata.version', version):
            from ultralytics.nn.tasks import DetectionModel
            from ultralytics.utils.torch_utils import strip_optimizer
    except ImportError as e:
        pytest.skip(f'ultralytics not importable ({e}); install it with '
                    'tools/misc/install.sh or pip install --no-deps '
                    '--target DIR -r requirements/tests-ultralytics.txt and '
                    'set MMZSQ_ULTRALYTICS_DIR=DIR')
    return SimpleNamespace(DetectionModel=DetectionModel,
                           strip_optimizer=strip_optimizer)


def _release_pt(ul, yaml: str, path) -> nn.Module:
    """A random Ultralytics model saved as a release .pt (fp16, stripped by
    Ultralytics' own strip_optimizer); returns it reloaded, in float."""
    torch.manual_seed(0)
    model = ul.DetectionModel(yaml, verbose=False)
    with torch.no_grad():  # non-trivial BN so that every tensor matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    torch.save({'model': model, 'train_args': {}}, path)
    ul.strip_optimizer(str(path))
    ref = torch.load(path, map_location='cpu', weights_only=False)['model']
    return ref.float().eval()


def _build_ours(scale: str):
    from mmengine.config import Config
    from mmyolo.registry import MODELS
    from mmyolo.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(f'configs/yolo11/yolo11_{scale}_coco.py')
    return MODELS.build(cfg.model).eval()


def _outputs(model: nn.Module, x: torch.Tensor, names: dict) -> dict:
    """Outputs of the named sub-modules (inputs for ``'<name>:in'``)."""
    got, hooks = {}, []
    mods = dict(model.named_modules())
    for key, name in names.items():
        if name.endswith(':in'):
            hooks.append(mods[name[:-3]].register_forward_pre_hook(
                lambda m, a, key=key: got.__setitem__(key, a[0])))
        else:
            hooks.append(mods[name].register_forward_hook(
                lambda m, a, out, key=key: got.__setitem__(key, out)))
    with torch.no_grad():
        ret = model(x)
    for h in hooks:
        h.remove()
    return got, ret


def _assert_close(ours, ref, what):
    assert ours.shape == ref.shape, (what, ours.shape, ref.shape)
    err = (ours - ref).abs().max().item()
    bound = ATOL + RTOL * ref.abs().max().item()
    assert err <= bound, f'{what}: max |diff| {err:.3g} > {bound:.3g}'
    return err / (ref.abs().max().item() + 1e-12)


@pytest.mark.parametrize('scale', ['n', 's'])
def test_raw_head_outputs_match_ultralytics(ultralytics, tmp_path, scale):
    pt = tmp_path / f'yolo11{scale}.pt'
    ref = _release_pt(ultralytics, f'yolo11{scale}.yaml', pt)
    ckpt = convert_yolo11(str(pt))
    torch.save(ckpt, tmp_path / 'ours.pth')
    ckpt = torch.load(tmp_path / 'ours.pth', weights_only=True)
    assert ckpt['meta']['arch']['scale'] == scale
    ours = _build_ours(scale)
    ours.load_state_dict(ckpt['state_dict'], strict=True)

    x = torch.rand(2, 3, 160, 224)  # not square: checks every reshape
    names_ref, names_ours = {}, {}
    for i in range(3):
        names_ref[f'feat{i}'] = f'model.23.cv2.{i}.0:in'
        names_ref[f'cls{i}'] = f'model.23.cv3.{i}.2'
        names_ref[f'dist{i}'] = f'model.23.cv2.{i}.2'
        names_ours[f'feat{i}'] = f'bbox_head.head_module.reg_preds.{i}.0:in'
        names_ours[f'cls{i}'] = f'bbox_head.head_module.cls_preds.{i}.2'
        names_ours[f'dist{i}'] = f'bbox_head.head_module.reg_preds.{i}.2'
    got_ref, _ = _outputs(ref, x, names_ref)
    with torch.no_grad():
        feats = ours.extract_feat(x)
        cls_scores, bbox_preds = ours.bbox_head(feats)  # eval: decoded
    got_ours, _ = _outputs(ours.bbox_head, feats, {
        k: v.replace('bbox_head.', '') for k, v in names_ours.items()
        if not k.startswith('feat')})
    worst = 0.
    for i in range(3):
        worst = max(worst, _assert_close(feats[i], got_ref[f'feat{i}'],
                                         f'neck P{i + 3}'))
        for k in ('cls', 'dist'):
            worst = max(worst, _assert_close(got_ours[f'{k}{i}'],
                                             got_ref[f'{k}{i}'], k + str(i)))
        # what the head returns: the same logits, and DFL-decoded distances
        _assert_close(cls_scores[i], got_ref[f'cls{i}'], f'cls_scores{i}')
        b, _, h, w = got_ref[f'dist{i}'].shape
        dist = ref.model[-1].dfl(got_ref[f'dist{i}'].view(b, 64, h * w))
        _assert_close(bbox_preds[i].flatten(2), dist, f'bbox_preds{i}')
    print(f'yolo11{scale}: worst relative error {worst:.2e}')


def test_refuses_other_ultralytics_models(ultralytics, tmp_path):
    model = ultralytics.DetectionModel('yolov8n.yaml', verbose=False)
    torch.save({'model': model}, tmp_path / 'v8.pt')
    with pytest.raises(ValueError, match=r'not an Ultralytics YOLO11 .*layer '
                       r'2 is C2f, YOLO11 has C3k2'):
        convert_yolo11(str(tmp_path / 'v8.pt'))
    # and the YOLOv5 converter points a YOLO11 .pt to this converter
    torch.save({'model': ultralytics.DetectionModel(
        'yolo11n.yaml', verbose=False)}, tmp_path / 'y11.pt')
    with pytest.raises(ValueError, match='yolo11_to_mmyolo.py'):
        convert_yolov5(str(tmp_path / 'y11.pt'))


@needs_yolov5n
def test_yolov5_checkpoint_is_pointed_to_its_converter():
    with pytest.raises(ValueError, match='yolov5_to_mmyolo.py'):
        convert_yolo11(YOLOV5N_PT)


# the refusals common to both converters (foreign files, the CLI's one-line
# errors): tests/test_converters/test_yolov5_converter.py
