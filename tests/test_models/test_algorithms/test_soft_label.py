"""model.soft_label: L_detect only on the images whose labels the teacher
sees; L_KD / L_feat on every image.  Real tiny YOLOv5 and YOLO11n."""
import copy

import pytest
import torch

from tests.data.yolo_students import (KINDS, blind_teacher, student_algo,
                                      yolo_batch)

# image 0: a class-0 box; image 1: a class-2 box (the class the blinded
# teacher cannot see)
ROWS = [[0, 0, 8., 8., 40., 48.], [1, 2, 16., 20., 56., 60.]]
# above a blinded class's confidence (~1e-13), below a random head's
# (~1e-4 .. 1e-2)
THR = 1e-8


def _det(losses):
    return {k: v for k, v in losses.items() if k.startswith('det_')}


def _plain(algo, data):
    """The same algorithm's losses with the switch off."""
    soft, algo.soft_label = algo.soft_label, None
    try:
        return algo(**copy.deepcopy(data), mode='loss')
    finally:
        algo.soft_label = soft


@pytest.mark.parametrize('kind', KINDS)
def test_conf_thr_0_masks_nothing_and_equals_the_plain_loss(kind):
    algo = student_algo(kind, soft_label=dict(conf_thr=0.))
    data = yolo_batch(algo, ROWS)
    _plain(algo, data)  # (the first batch initialises the step sizes)
    plain = _plain(algo, data)
    soft = algo(**copy.deepcopy(data), mode='loss')
    assert float(soft.pop('hard_frac')) == 0
    assert set(soft) == set(plain) and _det(plain)
    for k in plain:
        assert torch.equal(soft[k], plain[k]), k


@pytest.mark.parametrize('kind', KINDS)
def test_a_label_the_teacher_cannot_see_adds_no_det_loss(kind):
    algo = student_algo(kind, soft_label=dict(conf_thr=THR))
    blind_teacher(algo, 2)
    data = yolo_batch(algo, ROWS)
    _plain(algo, data)
    soft = algo(**copy.deepcopy(data), mode='loss')
    assert float(soft['hard_frac']) == 0.5
    # image 1's label moved (still class 2): its det loss stays out
    moved = copy.deepcopy(data)
    moved['data_samples']['bboxes_labels'][1, 2:] = torch.tensor(
        [2., 4., 30., 34.])
    again = algo(**copy.deepcopy(moved), mode='loss')
    for k, v in _det(soft).items():
        assert torch.equal(again[k], v), k
    plain, plain_moved = _plain(algo, data), _plain(algo, moved)
    assert any(not torch.equal(plain[k], plain_moved[k])
               for k in _det(plain))  # (the plain loss does see it)
    # = the head's own loss on image 0 alone
    head = algo.architecture.bbox_head
    s_out = algo.student_recorders.get_recorder('head').get_record_data()
    one = head.loss_by_feat(
        *[[t[:1] for t in level] for level in s_out],
        torch.tensor([ROWS[0]]), data['data_samples']['img_metas'][:1])
    for k, v in one.items():
        assert torch.allclose(soft[f'det_{k}'], algo.loss_weights['det'] * v,
                              rtol=1e-6), k
    # L_KD and L_feat still see both images
    for k in ('loss_kd', 'loss_feat'):
        assert torch.equal(soft[k], plain[k]), k
    # image 0's label counts: moving it changes the det loss
    moved0 = copy.deepcopy(data)
    moved0['data_samples']['bboxes_labels'][0, 2:] = torch.tensor(
        [20., 20., 60., 60.])
    other = algo(**copy.deepcopy(moved0), mode='loss')
    assert any(not torch.equal(other[k], soft[k]) for k in _det(soft))


def test_no_easy_image_gives_zero_det_loss_with_the_graph():
    algo = student_algo('yolov5', soft_label=dict(conf_thr=THR))
    blind_teacher(algo, 2)
    rows = [[0, 2, 8., 8., 40., 48.], [1, 2, 16., 20., 56., 60.]]
    losses = algo(**yolo_batch(algo, rows), mode='loss')
    assert float(losses['hard_frac']) == 1
    det = _det(losses)
    assert set(det) == {'det_loss_cls', 'det_loss_obj', 'det_loss_bbox'}
    assert all(float(v) == 0 and v.requires_grad for v in det.values())
    algo.parse_losses(losses)[0].backward()  # L_KD / L_feat still train
    assert algo.architecture.backbone.stem.conv.weight.grad.abs().sum() > 0


def test_image_without_labels_is_easy_and_list_samples_work():
    """An image without boxes is easy (its objectness negatives stay); a
    batch of DetDataSample lists gives the same losses as the dict."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    algo = student_algo('yolov5', soft_label=dict(conf_thr=THR))
    blind_teacher(algo, 2)
    data = yolo_batch(algo, [ROWS[1]])  # image 0 has no box
    _plain(algo, data)
    soft = algo(**copy.deepcopy(data), mode='loss')
    assert float(soft['hard_frac']) == 0.5
    samples = []
    for i in range(2):
        s = DetDataSample(metainfo=dict(batch_input_shape=(64, 64),
                                        img_shape=(64, 64)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([r[2:] for r in [ROWS[1]] if r[0] == i]
                                ).reshape(-1, 4),
            labels=torch.tensor([2] * i, dtype=torch.long))
        samples.append(s)
    listed = algo(data['inputs'], samples, mode='loss')
    assert float(listed['hard_frac']) == 0.5
    for k, v in _det(soft).items():
        assert torch.allclose(listed[k], v, rtol=1e-5), k


def test_bad_settings_are_one_line_config_errors():
    from mmzsq.utils.errors import ConfigError
    for kw, match in (
            (dict(soft_label=dict(conf_thr=1.5)), r'conf_thr=1.5: give'),
            (dict(soft_label=dict(thr=0.2)), r"unknown keys \['thr'\]"),
            (dict(soft_label=0.25), r'e.g. dict\(conf_thr=0.25\), or None'),
            (dict(soft_label=dict(conf_thr=0.2),
                  loss_weights=dict(det=0., kd=0.1, feat=1.)),
             r'loss_weights.det is 0: set loss_weights.det > 0')):
        with pytest.raises(ConfigError, match=match) as e:
            student_algo('yolov5', **kw)
        assert '\n' not in str(e.value)


def test_two_stage_detectors_are_refused():
    from mmengine.registry import init_default_scope

    from mmzsq.registry import MODELS
    from mmzsq.utils.errors import ConfigError
    from tests.data.qat_configs import tiny_two_stage, upstream_cfg
    init_default_scope('mmdet')
    arch = tiny_two_stage(upstream_cfg(
        'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py').model)
    for kw, key in ((dict(soft_label=dict(conf_thr=0.25)),
                     'model.soft_label'),
                    (dict(loss_weights=dict(det=1., kd=1., feat=1., iou=1.)),
                     'loss_weights.iou')):
        with pytest.raises(ConfigError,
                           match=f'{key} is for single-stage YOLO heads'
                           ) as e:
            MODELS.build(dict(
                type='mmzsq.QuantDistillAlgorithm',
                architecture=copy.deepcopy(arch),
                quantizer=dict(type='mmzsq.EagerLSQQuantizer'), **kw))
        assert '\n' not in str(e.value)
