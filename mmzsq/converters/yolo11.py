"""Convert an Ultralytics YOLO11 checkpoint without the Ultralytics source.

The ``.pt`` (a pickled ``ultralytics.nn.tasks.DetectionModel``, as saved by
Ultralytics 8.3+) is read with the restricted unpickler of
:mod:`.ultralytics_pickle`.  Its layer list is checked against YOLO11's
(``yolo11.yaml``, any scale), then every tensor is renamed to the keys of
mmzsq's YOLO11 (``configs/yolo11/``) module by module:

=========================  ==============================================
Ultralytics                mmzsq / mmyolo
=========================  ==============================================
``model.0``                ``backbone.stem``
``model.1`` … ``model.10`` ``backbone.stage{1-4}.{0-3}`` (2 layers/stage,
                           stage4 also SPPF, C2PSA)
``model.13/16``            ``neck.top_down_layers.0/1``
``model.17/20``            ``neck.downsample_layers.0/1``
``model.19/22``            ``neck.bottom_up_layers.0/1``
``model.23``               ``bbox_head.head_module``
C3k2/C2PSA ``cv1/cv2/m``   ``main_conv/final_conv/blocks``
C3k ``cv1/cv2/cv3/m``      ``main_conv/short_conv/final_conv/blocks``
Bottleneck, SPPF ``cv1/2`` ``conv1/conv2``
Detect ``cv2/cv3``         ``reg_preds/cls_preds`` (``cv3.i.j.0/1`` →
                           ``cls_preds.i.j.depthwise_conv/pointwise_conv``)
Detect ``dfl``             dropped (fixed ``arange``; mmyolo's ``proj``)
=========================  ==============================================
"""
import collections
from typing import Dict, Iterator, Optional, Tuple

import torch

from .ultralytics_pickle import (ModuleRecord, checkpoint_meta, load_model,
                                 not_ultralytics, short_class)

__all__ = ['load_yolo11_model', 'convert_yolo11', 'YOLO11_LAYERS']

# yolo11.yaml, layer by layer: (class, mmzsq module)
YOLO11_LAYERS = (
    ('Conv', 'backbone.stem'),
    ('Conv', 'backbone.stage1.0'),
    ('C3k2', 'backbone.stage1.1'),
    ('Conv', 'backbone.stage2.0'),
    ('C3k2', 'backbone.stage2.1'),
    ('Conv', 'backbone.stage3.0'),
    ('C3k2', 'backbone.stage3.1'),
    ('Conv', 'backbone.stage4.0'),
    ('C3k2', 'backbone.stage4.1'),
    ('SPPF', 'backbone.stage4.2'),
    ('C2PSA', 'backbone.stage4.3'),
    ('Upsample', None),
    ('Concat', None),
    ('C3k2', 'neck.top_down_layers.0'),
    ('Upsample', None),
    ('Concat', None),
    ('C3k2', 'neck.top_down_layers.1'),
    ('Conv', 'neck.downsample_layers.0'),
    ('Concat', None),
    ('C3k2', 'neck.bottom_up_layers.0'),
    ('Conv', 'neck.downsample_layers.1'),
    ('Concat', None),
    ('C3k2', 'neck.bottom_up_layers.1'),
    ('Detect', 'bbox_head.head_module'),
)
# child renames per Ultralytics class; None drops the child
_CHILDREN: Dict[str, Dict[str, Optional[str]]] = {
    'Conv': {'conv': 'conv', 'bn': 'bn', 'act': None},
    'DWConv': {'conv': 'conv', 'bn': 'bn', 'act': None},
    'C3k2': {'cv1': 'main_conv', 'cv2': 'final_conv', 'm': 'blocks'},
    'C3k': {'cv1': 'main_conv', 'cv2': 'short_conv', 'cv3': 'final_conv',
            'm': 'blocks'},
    'Bottleneck': {'cv1': 'conv1', 'cv2': 'conv2'},
    'SPPF': {'cv1': 'conv1', 'cv2': 'conv2', 'm': None},
    'C2PSA': {'cv1': 'main_conv', 'cv2': 'final_conv', 'm': 'blocks'},
    'PSABlock': {'attn': 'attn', 'ffn': 'ffn'},
    'Attention': {'qkv': 'qkv', 'proj': 'proj', 'pe': 'pe'},
    'Detect': {'cv2': 'reg_preds', 'cv3': 'cls_preds', 'dfl': None},
}
_CONTAINERS = ('Sequential', 'ModuleList')
_LEAVES = ('Conv2d', 'BatchNorm2d')
# Conv modules whose activation is Identity in YOLO11 (all others: SiLU)
_NO_ACT_PARENTS = ('Attention', )
_SCALES = {  # (deepen, widen, last_stage_out_channels) -> Ultralytics scale
    (0.5, 0.25, 1024): 'n', (0.5, 0.5, 1024): 's', (0.5, 1.0, 512): 'm',
    (1.0, 1.0, 512): 'l', (1.0, 1.5, 512): 'x'}


class _NotYOLO11(ValueError):
    pass


def _not_yolo11(path: str, why: str) -> ValueError:
    return not_ultralytics(path, 'YOLO11 detection', why, 'Pass a '
                           'yolo11{n,s,m,l,x}.pt saved by Ultralytics 8.3+',
                           _NotYOLO11)


def load_yolo11_model(path: str) -> ModuleRecord:
    """Unpickle the ``model`` (or ``ema``) entry of a YOLO11 ``.pt`` and
    check that its layers are YOLO11's."""
    model, found = load_model(path, 'YOLO11',
                              lambda why: _not_yolo11(path, why))
    if found == 'models.yolo.Model':
        raise _not_yolo11(path, 'it is a YOLOv5 checkpoint: use '
                          'tools/model_converters/yolov5_to_mmyolo.py')
    if found != 'ultralytics.nn.tasks.DetectionModel':
        raise _not_yolo11(path, f'no ultralytics.nn.tasks.DetectionModel '
                          f'under "model", found {found}')
    seq = model.children.get('model')
    layers = [short_class(m) for m in (seq.children.values() if seq else [])]
    expected = [c for c, _ in YOLO11_LAYERS]
    if layers != expected:
        bad = next((i for i, (a, b) in enumerate(zip(layers, expected))
                    if a != b), min(len(layers), len(expected)))
        got = layers[bad] if bad < len(layers) else 'nothing'
        raise _not_yolo11(path, f'layer {bad} is {got}, YOLO11 has '
                          f'{expected[bad] if bad < len(expected) else "none"}'
                          f' (a different YOLO version or task?)')
    detect = seq.children['23']
    if detect.children.get('one2one_cv2') is not None:
        raise _not_yolo11(path, 'its Detect head is end-to-end (one2one)')
    return model


def _walk(rec: ModuleRecord, src: str, dst: str,
          parent: str = '') -> Iterator[Tuple[str, str, torch.Tensor]]:
    """(Ultralytics key, mmzsq key, tensor) for ``rec``'s subtree."""
    cls = short_class(rec)
    if cls in _LEAVES:
        for attr in ('_parameters', '_buffers'):
            for k, v in (rec.__dict__.get(attr) or {}).items():
                if v is not None:
                    yield src + k, dst + k, v.detach()
        return
    if cls in ('Conv', 'DWConv'):
        act = short_class(rec.children.get('act'))
        want = 'Identity' if (parent in _NO_ACT_PARENTS
                              or src.endswith('.ffn.1.')) else 'SiLU'
        if act != want:
            raise _NotYOLO11(f'{src[:-1]} has a {act} activation where '
                             f'YOLO11 has {want}')
        bn = rec.children.get('bn')
        if bn is not None and abs(getattr(bn, 'eps', 1e-3) - 1e-3) > 1e-9:
            raise _NotYOLO11(f'{src[:-1]}.bn has eps {bn.eps}, YOLO11 1e-3')
    if cls in _CHILDREN:
        renames = _CHILDREN[cls]
    elif cls in _CONTAINERS:
        kids = [short_class(c) for c in rec.children.values()]
        renames = ({'0': 'depthwise_conv', '1': 'pointwise_conv'}
                   if kids == ['DWConv', 'Conv'] else
                   {k: k for k in rec.children})
    else:
        raise _NotYOLO11(f'{src[:-1]} is a {cls}, which YOLO11 does not have')
    for name, child in rec.children.items():
        if child is None:
            continue
        if name not in renames:
            raise _NotYOLO11(f'{src}{name} ({short_class(child)}) is not part '
                             f'of a YOLO11 {cls}')
        if renames[name] is None:
            continue
        yield from _walk(child, f'{src}{name}.', f'{dst}{renames[name]}.',
                         cls if cls not in _CONTAINERS else parent)


def _arch(model: ModuleRecord) -> dict:
    """Scale factors as mmzsq's configs spell them, read from the weights."""
    seq = model.children['model'].children
    stem = seq['0'].children['conv']._parameters['weight'].shape[0]
    last = seq['10'].children['cv2'].children['conv']._parameters[
        'weight'].shape[0]
    widen = stem / 64
    deepen = len(seq['2'].children['m'].children) / 2
    detect = seq['23']
    arch = dict(
        deepen_factor=deepen,
        widen_factor=widen,
        last_stage_out_channels=int(round(last / widen)),
        c3k_everywhere=short_class(
            seq['2'].children['m'].children['0']) == 'C3k',
        num_classes=int(detect.nc),
        reg_max=int(getattr(detect, 'reg_max', 16)))
    arch['scale'] = _SCALES.get(
        (deepen, widen, arch['last_stage_out_channels']), 'custom')
    return arch


def convert_yolo11(src: str) -> dict:
    """Convert an Ultralytics YOLO11 ``.pt`` to an mmzsq checkpoint dict.

    The result holds only tensors and plain Python values, so it loads with
    ``torch.load(..., weights_only=True)``; ``meta['arch']`` gives the
    config values (``configs/yolo11/yolo11_{scale}_coco.py``).
    """
    model = load_yolo11_model(src)
    state_dict = collections.OrderedDict()
    layers = model.children['model'].children
    try:
        for (_, dst), (idx, layer) in zip(YOLO11_LAYERS, layers.items()):
            if dst is None:
                continue
            for _, key, tensor in _walk(layer, f'model.{idx}.', dst + '.'):
                state_dict[key] = tensor.float().clone()
    except _NotYOLO11 as e:
        raise _not_yolo11(src, str(e)) from None
    arch = _arch(model)
    meta = checkpoint_meta(model, src, 'mmzsq.converters.yolo11', arch=arch,
                           num_classes=arch['num_classes'])
    return dict(state_dict=state_dict, meta=meta)
