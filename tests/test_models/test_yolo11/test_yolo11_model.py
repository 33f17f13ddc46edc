"""YOLO11n as Stage I / II will use it: loss + backward, and predict."""

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData


@pytest.fixture(scope='module')
def yolo11n():
    from mmyolo.registry import MODELS
    from mmyolo.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile('configs/yolo11/yolo11_n_coco.py')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_yolo11n_structure(yolo11n):
    """The modules Stage I/II configs name, and YOLO11n's size."""
    names = dict(yolo11n.named_modules())
    assert names['backbone.stem.conv'].in_channels == 3
    assert type(names['backbone.stage4.3']).__name__ == 'C2PSA'
    for i, ch in enumerate((64, 128, 256)):
        assert names[f'bbox_head.head_module.cls_preds.{i}.2'].out_channels \
            == 80
        assert names[f'bbox_head.head_module.reg_preds.{i}.2'].out_channels \
            == 64
        assert names[f'neck.out_layers.{i}'] is not None
        assert names[f'bbox_head.head_module.reg_preds.{i}.0'].conv \
            .in_channels == ch
    # Ultralytics' YOLO11n: 2,624,080 parameters, 16 of them its fixed DFL
    assert sum(p.numel() for p in yolo11n.parameters()) == 2624080 - 16


def test_yolo11n_loss_backward_predict(yolo11n):
    model = yolo11n.train()
    inputs = torch.randint(0, 256, (2, 3, 160, 160), dtype=torch.uint8)
    # (image index, label, x1, y1, x2, y2), as mmyolo's yolov5_collate
    boxes = torch.tensor([[0, 3, 10., 20., 90., 120.],
                          [0, 17, 50., 40., 70., 60.],
                          [1, 0, 0., 0., 160., 150.]])
    data = model.data_preprocessor(
        dict(inputs=inputs.float(),
             data_samples=dict(bboxes_labels=boxes)), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_dfl'}
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    model.zero_grad()
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.backbone.stem.conv.weight.grad.abs().sum() > 0
    assert model.backbone.stage4[3].blocks[0].attn.qkv.conv.weight.grad \
        .abs().sum() > 0

    model.eval()
    # untrained scores sit at the prior (~1e-4): keep them all to run NMS
    model.bbox_head.test_cfg.score_thr = 0.
    sample = DetDataSample(metainfo=dict(
        img_shape=(160, 160), ori_shape=(160, 160), scale_factor=(1., 1.),
        pad_param=[0., 0., 0., 0.], batch_input_shape=(160, 160)))
    sample.gt_instances = InstanceData()
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[inputs[0]], data_samples=[sample]), training=False)
        (res, ) = model(**data, mode='predict')
    pred = res.pred_instances
    assert pred.bboxes.shape[1] == 4 and len(pred) > 0
    assert pred.bboxes.min() >= 0 and pred.bboxes.max() <= 160
    assert ((pred.labels >= 0) & (pred.labels < 80)).all()
