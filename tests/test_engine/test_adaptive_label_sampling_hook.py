"""Adaptive label sampling (paper Alg. 1): update rules and schedule."""
import torch


def test_adaptive_label_update_rules():
    from mmzsq.engine.hooks import adaptive_label_update as upd
    T = torch.tensor
    boxes, labels = T([[0.1, 0.1, 0.5, 0.5]]), T([3])
    # 1) confident, non-overlapping, right size -> added with its class
    pb = T([[0.6, 0.6, 0.9, 0.9], [0.12, 0.1, 0.5, 0.52]])
    stats = {}
    b, lab = upd(boxes, labels, pb, T([0.9, 0.8]), T([5, 3]), stats=stats)
    assert len(b) == 2 and lab.tolist() == [3, 5]
    assert stats == dict(added=1, removed=0)
    # 2) below conf -> ignored; the lone label stays although unsupported
    b, lab = upd(boxes, labels, pb[:1], T([0.1]), T([5]))
    assert lab.tolist() == [3]
    # 3) area outside [0.01, 0.85] -> not added (tiny and huge)
    tiny, huge = T([[0.6, 0.6, 0.65, 0.65]]), T([[0., 0., 0.99, 0.95]])
    b, lab = upd(boxes, labels, torch.cat([tiny, huge]), T([0.9, 0.9]),
                 T([1, 2]))
    assert lab.tolist() == [3]
    # 4) two labels, only one supported by a kept prediction -> other goes
    boxes2, labels2 = T([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]), \
        T([3, 4])
    b, lab = upd(boxes2, labels2, T([[0.11, 0.1, 0.5, 0.5]]), T([0.5]), T([3]),
                 stats=stats)
    assert lab.tolist() == [3]
    assert stats == dict(added=1, removed=1)  # counts accumulate
    # 5) several labels, candidates elsewhere supporting none -> exactly
    #    the best-supported one stays
    b, lab = upd(boxes2, labels2, T([[0.0, 0.0, 0.05, 0.05]]), T([0.5]),
                 T([1]))
    assert len(lab) == 1
    # 5b) several labels and no candidate at all (nothing found is no
    #     evidence against them, as in the official rule) -> all stay
    b, lab = upd(boxes2, labels2, T([[0.0, 0.0, 0.05, 0.05]]), T([0.1]),
                 T([1]))
    assert lab.tolist() == [3, 4]
    # 6) IoU just at the threshold blocks adding
    b, lab = upd(boxes, labels, T([[0.1, 0.1, 0.5, 0.5]]), T([0.99]), T([9]))
    assert lab.tolist() == [3]
    # 7) class-balance veto
    b, lab = upd(boxes, labels, pb[:1], T([0.9]), T([5]),
                 allow_add=lambda c: False)
    assert lab.tolist() == [3]


def test_als_hook_schedule():
    from mmzsq.engine.hooks import AdaptiveLabelSamplingHook
    h = AdaptiveLabelSamplingHook()
    assert (h.conf_thr, h.iou_thr, h.min_area, h.max_area) == \
        (0.2, 0.35, 0.01, 0.85)
    assert not h.should_update(750, 3000) and h.should_update(800, 3000)
    assert h.should_update(2800, 3000) and not h.should_update(2850, 3000)
    assert not h.should_update(820, 3000)
    f = AdaptiveLabelSamplingHook(interval=10, warmup=0.2, early_exit=0.8)
    assert f.should_update(20, 100) and not f.should_update(10, 100) and \
        not f.should_update(90, 100)
    # a float 1.0 is the whole stage (the official YOLOv5 window: step 800
    # of 2500 to the end), an int 1 the first step
    y = AdaptiveLabelSamplingHook(warmup=0.32, early_exit=1.0)
    assert not y.should_update(750, 2500) and y.should_update(800, 2500)
    assert y.should_update(2500, 2500)
    assert not AdaptiveLabelSamplingHook(warmup=1, early_exit=1) \
        .should_update(50, 2500)


def test_shipped_als_windows():
    """YOLOv5: the official command's window (800 of 2500 to the end);
    YOLO11: its official 800 / 2800 of 3000."""
    import os.path as osp

    from mmengine.config import Config

    from mmzsq.engine.hooks import AdaptiveLabelSamplingHook
    root = osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'configs', 'zsq')
    for name, total, first, last in (('yolov5_n_w8a8.py', 2500, 800, 2500),
                                     ('yolo11_s_w8a8.py', 3000, 800, 2800)):
        syn = Config.fromfile(osp.join(root, name)).train_cfg.synthesis
        assert syn.stages[0].iters == total
        kw = {k: v for k, v in syn.als.items() if k != 'type'}
        h = AdaptiveLabelSamplingHook(**kw)
        steps = [s for s in range(1, total + 1) if h.should_update(s, total)]
        assert (steps[0], steps[-1]) == (first, last), name
