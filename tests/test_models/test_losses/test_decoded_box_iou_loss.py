"""mmzsq.DecodedBoxIoULoss and loss_weights.iou, on the real heads of a
tiny YOLOv5 and of YOLO11n (random weights)."""
import copy

import pytest
import torch

from tests.data.yolo_students import (KINDS, student_algo, yolo_batch,
                                      yolo_model)


def _head_outs(kind, size=64):
    """A head and its training-format outputs on random images."""
    from mmengine.registry import init_default_scope

    from mmzsq.registry import MODELS
    init_default_scope('mmyolo')
    torch.manual_seed(0)
    model = MODELS.build(yolo_model(kind))
    model.init_weights()
    model.train()
    with torch.no_grad():
        outs = model.bbox_head(model.extract_feat(
            torch.rand(2, 3, size, size)))
    return model.bbox_head, outs


def _perturbed(outs, fn):
    """Student outputs: the teacher's with ``fn`` on the box outputs."""
    s = [[t.clone().requires_grad_() for t in level] for level in outs]
    return s, (s[0], [fn(t) for t in s[1]]) + tuple(s[2:])


@pytest.mark.parametrize('kind', KINDS)
def test_zero_for_the_teacher_positive_when_boxes_move(kind):
    from mmzsq.models.losses import DecodedBoxIoULoss
    from mmzsq.models.utils import decode_yolo_outputs
    head, outs = _head_outs(kind)
    pred = decode_yolo_outputs(head, outs)
    n = sum(c.shape[2] * c.shape[3] for c in outs[0]) * head.num_base_priors
    assert pred.boxes.shape == (2, n, 4) and pred.centres.shape == (n, 2)
    assert pred.scores.shape == (2, n, head.num_classes)
    assert ((pred.boxes[..., 2:] >= pred.boxes[..., :2]).all())
    # every prior counts at conf_thr 0; above the most confident, none
    loss = DecodedBoxIoULoss(conf_thr=0.)
    assert float(loss(outs, outs, head)) == pytest.approx(0., abs=1e-6)
    leaves, moved = _perturbed(outs, lambda t: t + 0.5 * torch.randn_like(
        t))
    value = loss(moved, outs, head)
    assert 0.01 < float(value) <= 1
    value.backward()
    assert leaves[1][0].grad.abs().sum() > 0  # through the decoded boxes
    assert leaves[0][0].grad is None or not leaves[0][0].grad.any()
    top = float(pred.scores.max())
    above = DecodedBoxIoULoss(conf_thr=min(top * 1.01, 0.999))
    none = above(moved, outs, head)
    assert float(none) == 0 and none.requires_grad


def test_iou_of_doubled_distances_is_a_quarter():
    """YOLO11's boxes are distances from the cell centre: doubling them
    doubles each side around the same point, IoU 1/4 on every prior."""
    from mmzsq.models.losses import DecodedBoxIoULoss
    head, outs = _head_outs('yolo11')
    _, moved = _perturbed(outs, lambda t: 2 * t)
    got = DecodedBoxIoULoss(conf_thr=0.)(moved, outs, head)
    assert float(got) == pytest.approx(0.75, abs=1e-4)


def test_confident_priors_only():
    """Only the priors above conf_thr count: the mean over them."""
    from mmdet.structures.bbox import bbox_overlaps

    from mmzsq.models.losses import DecodedBoxIoULoss
    from mmzsq.models.utils import decode_yolo_outputs
    head, outs = _head_outs('yolov5')
    conf = decode_yolo_outputs(head, outs).scores.amax(-1)
    thr = float(conf.flatten().median())
    _, moved = _perturbed(outs, lambda t: t + 0.3 * torch.randn_like(t))
    s = decode_yolo_outputs(head, moved).boxes
    t = decode_yolo_outputs(head, outs).boxes
    keep = conf > thr
    want = (1 - bbox_overlaps(s[keep], t[keep], is_aligned=True)).mean()
    assert 0 < keep.sum() < keep.numel()
    assert torch.allclose(DecodedBoxIoULoss(conf_thr=thr)(moved, outs, head),
                          want)


def test_loss_weights_iou_adds_the_term_default_off():
    from mmzsq.utils.errors import ConfigError
    rows = [[0, 0, 8., 8., 40., 48.], [1, 2, 16., 20., 56., 60.]]
    plain = student_algo('yolov5')
    assert plain.iou_loss is None and plain.loss_weights['iou'] == 0
    data = yolo_batch(plain, rows)
    base = plain(**copy.deepcopy(data), mode='loss')
    assert 'loss_iou' not in base
    algo = student_algo('yolov5', loss_weights=dict(
        det=0.04, kd=0.1, feat=1.0, iou=2.0), iou_loss=dict(
            type='mmzsq.DecodedBoxIoULoss', conf_thr=0.))
    losses = algo(**copy.deepcopy(data), mode='loss')
    for k in base:  # the other terms unchanged
        assert torch.equal(losses[k], base[k]), k
    s = algo.student_recorders.get_recorder('head').get_record_data()
    with torch.no_grad():
        t = algo.teacher.bbox_head(algo.teacher.extract_feat(
            data['inputs']))
    want = 2.0 * algo.iou_loss(s, t, algo.architecture.bbox_head)
    assert float(losses['loss_iou']) > 0  # (the student is quantized)
    assert torch.allclose(losses['loss_iou'], want)
    algo.parse_losses(losses)[0].backward()
    # default loss module, and its setting checked
    assert student_algo('yolov5', loss_weights=dict(
        det=1., iou=1.)).iou_loss.conf_thr == 0.25
    with pytest.raises(ConfigError, match='loss_weights.iou is 0'):
        student_algo('yolov5', iou_loss=dict(type='mmzsq.DecodedBoxIoULoss'))
    with pytest.raises(ConfigError, match=r'conf_thr=1: give a teacher'):
        student_algo('yolov5', loss_weights=dict(det=1., iou=1.),
                     iou_loss=dict(type='mmzsq.DecodedBoxIoULoss',
                                   conf_thr=1))


@pytest.mark.parametrize('kind', KINDS)
def test_decoding_is_predict_by_feat_before_nms(kind):
    """The decoded boxes and confidences are mmyolo's own: those of
    ``predict_by_feat`` with no threshold, NMS or rescaling."""
    from mmengine.config import ConfigDict

    from mmzsq.models.utils import decode_yolo_outputs
    head, outs = _head_outs(kind)
    pred = decode_yolo_outputs(head, outs)
    metas = [dict(ori_shape=(10 ** 4, 10 ** 4), scale_factor=(1., 1.))] * 2
    cfg = ConfigDict(multi_label=False, score_thr=-1, nms_pre=10 ** 6)
    res = head.predict_by_feat(
        *(outs if kind == 'yolov5' else outs[:2]), batch_img_metas=metas,
        cfg=cfg, rescale=False, with_nms=False)
    for i, r in enumerate(res):
        conf = pred.scores[i].amax(-1)
        order = conf.argsort(descending=True)
        assert torch.allclose(r.scores, conf[order], rtol=1e-5)
        # (predict_by_feat clamps the boxes to the image)
        assert torch.allclose(r.bboxes, pred.boxes[i][order].clamp(0, 1e4),
                              atol=1e-3)


@pytest.mark.parametrize('kind', KINDS)
def test_max_confidence_is_the_largest_decoded_score(kind):
    """The IoU term's teacher confidence, taken on the raw maps: the
    per-prior maximum of decode_yolo_outputs' [B, N, C] scores (to the
    last bits of the vectorised sigmoid)."""
    from mmzsq.models.utils import decode_yolo_outputs, max_confidence
    head, outs = _head_outs(kind)
    conf = max_confidence(head, outs)
    want = decode_yolo_outputs(head, outs, boxes=False).scores.amax(-1)
    assert conf.shape == want.shape
    assert torch.allclose(conf, want, rtol=1e-6, atol=1e-9)
    assert conf.min() < conf.max()  # not a constant
