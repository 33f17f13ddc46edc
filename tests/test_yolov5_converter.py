import subprocess
import sys

import pytest
import torch

from mmzsq.converters.yolov5 import convert_yolov5, load_ultralytics_model

from .conftest import YOLOV5N_PT, needs_yolov5n


@needs_yolov5n
def test_convert_matches_mmyolo_model(yolov5n_mmyolo_ckpt):
    """Every converted key exists in mmyolo's YOLOv5n with the same shape,
    and every mmyolo parameter/buffer is provided."""
    from mmengine.config import Config
    from mmyolo.registry import MODELS
    from mmyolo.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile('configs/yolov5/yolov5_n-v61_fp_coco.py')
    model = MODELS.build(cfg.model)
    ours = torch.load(yolov5n_mmyolo_ckpt, weights_only=True)
    sd = model.state_dict()
    missing = set(sd) - set(ours['state_dict'])
    unexpected = set(ours['state_dict']) - set(sd)
    assert not missing and not unexpected, (missing, unexpected)
    for k, v in ours['state_dict'].items():
        assert v.shape == sd[k].shape, k
        assert v.dtype == torch.float32
    assert ours['meta']['dataset_meta']['classes'][0] == 'person'
    assert ours['meta']['num_classes'] == 80


@needs_yolov5n
def test_restricted_unpickler_builds_no_real_modules():
    model = load_ultralytics_model(YOLOV5N_PT)
    assert not isinstance(model, torch.nn.Module)
    assert model._class == 'models.yolo.Model'


def test_refuses_non_yolov5(tmp_path):
    torch.save({'state_dict': {'a': torch.ones(1)}}, tmp_path / 'mm.pth')
    with pytest.raises(ValueError, match='not an Ultralytics YOLOv5'):
        convert_yolov5(str(tmp_path / 'mm.pth'))
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='not a torch zip archive'):
        convert_yolov5(str(tmp_path / 'junk.pt'))
    # a pickle naming something outside the allow-list is refused, not run
    torch.save({'model': subprocess.Popen}, tmp_path / 'evil.pt')
    with pytest.raises(ValueError, match='refusing to load .*Popen'):
        convert_yolov5(str(tmp_path / 'evil.pt'))
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        convert_yolov5(str(tmp_path / 'missing.pt'))


def test_cli_one_line_errors(tmp_path):
    out = subprocess.run(
        [sys.executable, 'tools/model_converters/yolov5_to_mmyolo.py',
         str(tmp_path / 'missing.pt'), str(tmp_path / 'o.pth')],
        capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert out.stderr.strip().count('\n') == 0
    assert out.stderr.startswith('error: checkpoint not found')
