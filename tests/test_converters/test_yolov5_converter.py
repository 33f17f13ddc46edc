import subprocess
import sys

import pytest
import torch

from mmzsq.converters.yolo11 import convert_yolo11
from mmzsq.converters.yolov5 import convert_yolov5, load_ultralytics_model

from tests.conftest import YOLOV5N_PT, needs_yolov5n


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


CONVERTERS = [(convert_yolov5, 'YOLOv5', 'yolov5_to_mmyolo.py'),
              (convert_yolo11, 'YOLO11', 'yolo11_to_mmyolo.py')]


@pytest.mark.parametrize('convert,family,_', CONVERTERS)
def test_refuses_foreign_files(convert, family, _, tmp_path):
    torch.save({'state_dict': {'a': torch.ones(1)}}, tmp_path / 'mm.pth')
    with pytest.raises(ValueError, match=f'not an Ultralytics {family}'):
        convert(str(tmp_path / 'mm.pth'))
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='not a torch zip archive'):
        convert(str(tmp_path / 'junk.pt'))
    # a pickle naming something outside the allow-list is refused, not run
    torch.save({'model': subprocess.Popen}, tmp_path / 'evil.pt')
    with pytest.raises(ValueError, match='refusing to load .*Popen'):
        convert(str(tmp_path / 'evil.pt'))
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        convert(str(tmp_path / 'missing.pt'))


@pytest.mark.parametrize('_,family,tool', CONVERTERS)
def test_cli_one_line_errors(_, family, tool, tmp_path):
    torch.save({'state_dict': {}}, tmp_path / 'mm.pth')
    for src, msg in (('missing.pt', 'error: checkpoint not found'),
                     ('mm.pth', f'error: {tmp_path / "mm.pth"} is not an '
                      f'Ultralytics {family}')):
        out = subprocess.run(
            [sys.executable, f'tools/model_converters/{tool}',
             str(tmp_path / src), str(tmp_path / 'o.pth')],
            capture_output=True, text=True, timeout=300)
        assert out.returncode != 0
        assert out.stderr.strip().count('\n') == 0, out.stderr
        assert out.stderr.startswith(msg), out.stderr
        assert not (tmp_path / 'o.pth').exists()
