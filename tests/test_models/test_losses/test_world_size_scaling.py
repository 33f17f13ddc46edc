"""The detection loss does not grow with the number of processes.

mmyolo's YOLOv5 / YOLOv8 (YOLO11) heads multiply their losses by the world
size; mmzsq divides it out (``undo_world_size_scaling``) in the Stage I
adapter and the Stage II algorithm.  A 2-rank gloo run and a 1-rank run of
the same batch and weights must report the same per-rank L_detect.
"""
import copy
import json
import os.path as osp

import pytest
import torch

from tests.conftest import ROOT

RES = 64
FAMILIES = dict(
    yolov5=osp.join(ROOT, 'configs/yolov5/yolov5_n-v61_fp_coco.py'),
    yolo11=osp.join(ROOT, 'configs/yolo11/yolo11_n_coco.py'))


def _algo(name):
    """The Stage II algorithm of a family (its teacher is the float detector
    of Stage I): PyTorch's default init under a fixed seed; the weights are
    shipped to the other rank anyway."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmzsq.registry import MODELS
    init_default_scope('mmyolo')
    arch = Config.fromfile(FAMILIES[name]).model
    arch['use_syncbn'] = False
    torch.manual_seed(0)
    kd = 'mmzsq.YOLOv8KDLoss' if name == 'yolo11' else 'mmzsq.YOLOKDLoss'
    algo = MODELS.build(dict(
        type='mmzsq.QuantDistillAlgorithm', architecture=arch,
        quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=8, a_bits=8),
        loss_weights=dict(det=1.0, kd=0.0, feat=0.0),
        kd_loss=dict(type=kd)))
    return algo


def _labels():
    return [(torch.tensor([[4., 6., 40., 50.]]), torch.tensor([0])),
            (torch.tensor([[10., 12., 60., 60.], [2., 2., 20., 30.]]),
             torch.tensor([2, 5]))]


def _losses(algo, weights):
    """Per-rank L_detect of the Stage I adapter (also mmyolo's own sum) and
    of the Stage II algorithm, on a fixed batch, from ``weights`` (LSQ step
    sizes not yet initialised: their init is averaged over the ranks)."""
    from mmzsq.synthesis import DetectorAdapter
    from mmzsq.synthesis.detector_adapter import \
        head_module_training_outputs
    algo.load_state_dict(weights)
    det = algo.teacher
    adapter = DetectorAdapter(det)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, RES, RES, generator=g)
    x = adapter.normalize(images)
    out = dict(stage1=float(adapter.sum_losses(adapter.loss(x, _labels()))))
    samples = adapter.data_samples((RES, RES), _labels())
    with torch.no_grad(), head_module_training_outputs(det):
        raw = det.loss(x, samples)  # mmyolo's own
    out['stage1_raw'] = float(adapter.sum_losses(raw))
    algo.train()
    ds = dict(bboxes_labels=adapter.data_samples((RES, RES),
                                                 _labels())['bboxes_labels'],
              img_metas=[dict(batch_input_shape=(RES, RES))] * 2)
    data = algo.data_preprocessor(dict(inputs=images * 255, data_samples=ds),
                                  True)
    losses = algo(**data, mode='loss')
    out['stage2'] = float(sum(v for k, v in losses.items()
                              if k.startswith('det_')))
    return out


def _init(rank, init_file):
    import datetime

    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=90))


def _worker(init_file, weights_file, out_file):
    """Rank 1 (rank 0 is the test process itself), forked."""
    torch.set_num_threads(1)  # no OpenMP pool in a forked child
    _init(1, init_file)
    weights = torch.load(weights_file)
    res = {name: _losses(_algo(name), weights[name]) for name in FAMILIES}
    with open(out_file, 'w') as f:
        json.dump(res, f)
    from mmzsq.utils.cli import finish_distributed
    finish_distributed()


def test_det_loss_same_on_one_and_two_ranks(tmp_path):
    """Rank 0 is this process and rank 1 a fork of it, made after the
    imports: a spawned pair would import mmzsq's stack twice more (~2x the
    test's time on a 2-core machine)."""
    import torch.distributed as dist
    import torch.multiprocessing as mp

    import mmzsq.models  # noqa: F401  (imported before the fork)
    import mmzsq.synthesis  # noqa: F401
    from mmzsq.utils.cli import finish_distributed
    init, out = str(tmp_path / 'init'), str(tmp_path / 'rank1.json')
    child = mp.get_context('fork').Process(
        target=_worker, args=(init, str(tmp_path / 'w.pth'), out))
    child.start()
    try:
        algos = {name: _algo(name) for name in FAMILIES}
        weights = {n: copy.deepcopy(a.state_dict()) for n, a in algos.items()}
        torch.save(weights, tmp_path / 'w.pth')
        one = {n: _losses(algos[n], weights[n]) for n in FAMILIES}
        _init(0, init)
        two = [{n: _losses(algos[n], weights[n]) for n in FAMILIES}]
        finish_distributed()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        child.join(120)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0, child.exitcode
    two.append(json.load(open(out)))
    for rank in (0, 1):
        for name in FAMILIES:
            o, t = one[name], two[rank][name]
            assert o['stage1'] > 0 and o['stage2'] > 0, (name, o)
            # mmyolo itself scales by the world size ...
            assert t['stage1_raw'] == pytest.approx(2 * o['stage1_raw'],
                                                    rel=1e-5), (rank, name)
            # ... mmzsq's per-rank L_detect does not
            assert t['stage1'] == pytest.approx(o['stage1'], rel=1e-5), \
                (rank, name)
            assert t['stage2'] == pytest.approx(o['stage2'], rel=1e-5), \
                (rank, name)
            assert o['stage1'] == pytest.approx(o['stage1_raw'], rel=1e-6)


def test_only_heads_that_scale_are_divided():
    from mmdet.models.dense_heads import RetinaHead
    from mmyolo.models.dense_heads import (PPYOLOEHead, RTMDetHead,
                                           YOLOv5Head, YOLOv6Head, YOLOv8Head,
                                           YOLOXHead)

    from mmzsq.models.losses.world_size_scaling import \
        head_scales_by_world_size
    for cls, scales in ((YOLOv5Head, True), (YOLOv6Head, True),
                        (YOLOv8Head, True), (RTMDetHead, False),
                        (YOLOXHead, False), (PPYOLOEHead, False),
                        (RetinaHead, False)):
        model = torch.nn.Module()
        model.bbox_head = cls.__new__(cls)  # the class is what counts
        torch.nn.Module.__init__(model.bbox_head)
        assert head_scales_by_world_size(model) is scales, cls
    assert not head_scales_by_world_size(torch.nn.Module())  # two-stage
