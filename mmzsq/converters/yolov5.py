"""Convert an Ultralytics YOLOv5 checkpoint without the Ultralytics source.

The ``.pt`` (a pickled ``models.yolo.Model``) is read with the restricted
unpickler of :mod:`.ultralytics_pickle`; its tensors are collected exactly as
``state_dict()`` would name them and renamed to mmyolo keys with mmyolo's own
mapping.
"""
import collections
import importlib.util
import os.path as osp

from .ultralytics_pickle import (ModuleRecord, checkpoint_meta, load_model,
                                 not_ultralytics)
from .ultralytics_pickle import named_tensors as _named_tensors

__all__ = ['ModuleRecord', 'load_ultralytics_model', 'convert_yolov5']


def _not_yolov5(path: str, why: str) -> ValueError:
    return not_ultralytics(path, 'YOLOv5', why, 'Pass the .pt released by '
                           'ultralytics/yolov5 (e.g. yolov5n.pt v6.1)')


def load_ultralytics_model(path: str) -> ModuleRecord:
    """Unpickle the ``model`` (or ``ema``) entry of a YOLOv5 ``.pt``."""
    model, found = load_model(path, 'YOLOv5',
                              lambda why: _not_yolov5(path, why))
    if not isinstance(model, ModuleRecord) or found != 'models.yolo.Model':
        hint = ('; for YOLO11 use tools/model_converters/yolo11_to_mmyolo.py'
                if found.startswith('ultralytics.') else '')
        raise _not_yolov5(path, f'no models.yolo.Model under "model", found '
                          f'{found}{hint}')
    return model


def _mmyolo_key_maps():
    """mmyolo's own YOLOv5 → mmyolo key mapping (P5 and P6)."""
    spec = importlib.util.find_spec('mmyolo')  # locate without importing
    if spec is None:
        raise ImportError('mmyolo is not installed: run `make install`')
    path = osp.join(spec.submodule_search_locations[0], '.mim', 'tools',
                    'model_converters', 'yolov5_to_mmyolo.py')
    spec = importlib.util.spec_from_file_location('_mmyolo_yolov5_conv', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.convert_dict_p5, mod.convert_dict_p6


def _rename(key: str, detect_idx: str, convert_dict: dict) -> str:
    """mmyolo's renaming rule; SPPF and Detect are mapped per sub-module."""
    num, module = key.split('.')[1:3]
    split_layers = ('9', '24') if detect_idx == '24' else ('11', '33')
    prefix = f'model.{num}.{module}' if num in split_layers else f'model.{num}'
    new_key = key.replace(prefix, convert_dict[prefix])
    if '.m.' in new_key:
        new_key = new_key.replace('.m.', '.blocks.').replace('.cv', '.conv')
    elif 'bbox_head.head_module.proto_preds.cv' in new_key:
        new_key = new_key.replace('bbox_head.head_module.proto_preds.cv',
                                  'bbox_head.head_module.proto_preds.conv')
    else:
        new_key = new_key.replace('.cv1', '.main_conv').replace(
            '.cv2', '.short_conv').replace('.cv3', '.final_conv')
    return new_key


def convert_yolov5(src: str) -> dict:
    """Convert an Ultralytics YOLOv5 ``.pt`` to an mmyolo checkpoint dict.

    The result holds only tensors and plain Python values, so it loads with
    ``torch.load(..., weights_only=True)``.
    """
    model = load_ultralytics_model(src)
    seq = model.children.get('model')
    layers = seq.children if seq is not None else {}
    detect = [k for k, m in layers.items()
              if getattr(m, '_class', '') == 'models.yolo.Detect']
    if len(detect) != 1 or detect[0] not in ('24', '33'):
        raise _not_yolov5(src, f'Detect layer at {detect}, expected model.24 '
                          '(P5) or model.33 (P6)')
    p5, p6 = _mmyolo_key_maps()
    convert_dict = p5 if detect[0] == '24' else p6
    state_dict = collections.OrderedDict()
    for key, tensor in _named_tensors(model):
        if key.endswith('.anchors') or key.endswith('.anchor_grid'):
            continue
        state_dict[_rename(key, detect[0], convert_dict)] = \
            tensor.float().clone()
    meta = checkpoint_meta(
        model, src, 'mmzsq.converters.yolov5',
        arch='P6' if detect[0] == '33' else 'P5',
        num_classes=int(model.yaml['nc']) if isinstance(
            getattr(model, 'yaml', None), dict) else None)
    return dict(state_dict=state_dict, meta=meta)
