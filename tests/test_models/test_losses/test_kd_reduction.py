"""KD losses: ``reduction='image'`` (Eq. 7) vs the per-anchor mean."""
import pytest
import torch

from mmzsq.models.losses import TwoStageKDLoss, YOLOKDLoss, YOLOv8KDLoss


def _pair(*shape):
    return torch.randn(*shape) * 3, torch.randn(*shape) * 3


def test_yolo_kd_image_is_anchor_mean_times_anchors_per_image():
    torch.manual_seed(0)
    b, a, c = 2, 3, 4
    levels = [(4, 5), (2, 3)]
    s_cls, t_cls, s_obj, t_obj = [], [], [], []
    for h, w in levels:
        for out, n in ((s_cls, a * c), (s_obj, a)):
            out.append(torch.randn(b, n, h, w) * 3)
        t_cls.append(torch.randn(b, a * c, h, w) * 3)
        t_obj.append(torch.randn(b, a, h, w) * 3)
    s, t = (s_cls, None, s_obj), (t_cls, None, t_obj)
    mean, image = YOLOKDLoss(), YOLOKDLoss(reduction='image')

    def level(x, i):
        return tuple(v if v is None else v[i:i + 1] for v in x)

    for i, (h, w) in enumerate(levels):  # one level: factor A*H*W
        assert torch.allclose(image(level(s, i), level(t, i)),
                              mean(level(s, i), level(t, i)) * a * h * w,
                              rtol=1e-5)
    # levels: averaged per anchor, summed per image
    per_level = [mean(level(s, i), level(t, i)) for i in range(2)]
    assert torch.allclose(mean(s, t), sum(per_level) / 2, rtol=1e-6)
    want = sum(p * a * h * w for p, (h, w) in zip(per_level, levels))
    assert torch.allclose(image(s, t), want, rtol=1e-5)


def test_yolo_kd_image_is_sum_over_anchors_and_classes_over_images():
    """Eq. 7 written out: tau^2 sum KL(p_t || p_s) / N."""
    torch.manual_seed(0)
    tau, b, a, c, h, w = 4.0, 2, 3, 5, 2, 2
    sc, tc = _pair(b, a * c, h, w)
    so, to = _pair(b, a, h, w)
    loss = YOLOKDLoss(tau=tau, reduction='image')(([sc], None, [so]),
                                                  ([tc], None, [to]))

    def kl(s, t, dim):
        p_t = (t / tau).softmax(dim)
        return (p_t * (p_t.log() - (s / tau).log_softmax(dim))).sum()

    cls = kl(sc.reshape(b, a, c, h, w), tc.reshape(b, a, c, h, w), 2)
    z = torch.zeros_like(so)
    obj = kl(torch.stack([z, so], 0), torch.stack([z, to], 0), 0)
    assert torch.allclose(loss, tau**2 * (cls + obj) / b, rtol=1e-5)


def test_yolov8_kd_image_factors_for_classes_and_dfl():
    torch.manual_seed(0)
    b, c, h, w, reg = 2, 3, 4, 5, 8
    sc, tc = _pair(b, c, h, w)
    sd, td = _pair(b, h * w, 4, reg)
    s, t = ([sc], [None], [sd]), ([tc], [None], [td])
    for kw, rows in ((dict(dfl_weight=0.0), h * w),
                     (dict(cls_weight=0.0), h * w * 4)):
        mean = YOLOv8KDLoss(**kw)(s, t)
        image = YOLOv8KDLoss(reduction='image', **kw)(s, t)
        assert mean > 0
        assert torch.allclose(image, mean * rows, rtol=1e-5)


def test_two_stage_kd_image_factors_for_rpn_and_rois():
    torch.manual_seed(0)
    b, a, h, w, rois = 2, 3, 4, 4, 10
    sr, tr = _pair(b, a, h, w)
    si, ti = _pair(rois, 4)
    rpn = dict(roi_weight=0.0)
    assert torch.allclose(
        TwoStageKDLoss(reduction='image', **rpn)([sr], [tr]),
        TwoStageKDLoss(**rpn)([sr], [tr]) * a * h * w, rtol=1e-5)
    roi = dict(rpn_weight=0.0)
    assert torch.allclose(
        TwoStageKDLoss(reduction='image', **roi)([sr], [tr], si, ti),
        TwoStageKDLoss(**roi)([sr], [tr], si, ti) * rois / b, rtol=1e-5)


@pytest.mark.parametrize('cls', [YOLOKDLoss, YOLOv8KDLoss, TwoStageKDLoss])
def test_bad_reduction_is_a_config_error(cls):
    from mmzsq.utils.errors import ConfigError
    with pytest.raises(ConfigError, match="reduction='batch' unknown"):
        cls(reduction='batch')
