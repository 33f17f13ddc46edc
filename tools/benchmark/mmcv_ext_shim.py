"""mmcv._ext for an mmcv without CUDA ops (copied into mmcv/ by
tools/benchmark/device_run.sh): nms and roi_align on torchvision's kernels
(CPU and CUDA; without torchvision, nms in plain torch).  A compiled
CPU-only ``_ext`` kept beside it as ``_ext_native.so.bin`` runs everything
on CPU tensors; without one, every other op raises when called.  mmcv.ops
imports in full either way, so mmdet / mmyolo import."""
import importlib.machinery
import importlib.util
import os.path as osp

import torch

try:
    import torchvision
except ImportError:  # e.g. a CPU venv without it: nms only
    torchvision = None


def _load_native():
    path = osp.join(osp.dirname(osp.abspath(__file__)), '_ext_native.so.bin')
    if not osp.isfile(path):
        return None
    loader = importlib.machinery.ExtensionFileLoader('mmcv._ext', path)
    spec = importlib.util.spec_from_loader('mmcv._ext', loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


_native = _load_native()


def _on_native(t):
    return _native is not None and not t.is_cuda


def _nms_torch(boxes, scores, thr):
    """Greedy NMS in plain torch (an n x n IoU matrix: small n only)."""
    order = scores.argsort(descending=True)
    b = boxes[order]
    area = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    inter = (torch.min(b[:, None, 2:], b[None, :, 2:]) -
             torch.max(b[:, None, :2], b[None, :, :2])).clamp(min=0).prod(2)
    iou = (inter / (area[:, None] + area[None] - inter).clamp(min=1e-12))
    iou = iou.cpu()
    keep = torch.ones(len(b), dtype=torch.bool)
    for i in range(len(b)):
        if keep[i]:
            keep[i + 1:] &= iou[i, i + 1:] <= thr
    return order[keep.to(order.device)]


def nms(boxes, scores, iou_threshold=0.5, offset=0):
    if _on_native(boxes):
        return _native.nms(boxes, scores, iou_threshold=iou_threshold,
                           offset=offset)
    if offset:  # legacy "+1" box sizes: the same as widening x2, y2
        boxes = torch.cat([boxes[:, :2], boxes[:, 2:4] + offset], 1)
    if torchvision is None:
        return _nms_torch(boxes.float(), scores.float(), float(iou_threshold))
    return torchvision.ops.nms(boxes.float(), scores.float(),
                               float(iou_threshold))


def _avg_only(pool_mode):
    if torchvision is None:
        raise NotImplementedError('RoIAlign without compiled mmcv ops needs '
                                  'torchvision')
    if int(pool_mode) != 1:
        raise NotImplementedError(
            'mmcv without compiled ops (device_run.sh): RoIAlign supports '
            "pool_mode='avg' only")


def roi_align_forward(input, rois, output, argmax_y, argmax_x,
                      aligned_height, aligned_width, spatial_scale,
                      sampling_ratio, pool_mode, aligned):
    if _on_native(input):
        return _native.roi_align_forward(
            input, rois, output, argmax_y, argmax_x,
            aligned_height=aligned_height, aligned_width=aligned_width,
            spatial_scale=spatial_scale, sampling_ratio=sampling_ratio,
            pool_mode=pool_mode, aligned=aligned)
    _avg_only(pool_mode)
    output.copy_(torchvision.ops.roi_align(
        input, rois.to(input.dtype), (aligned_height, aligned_width),
        spatial_scale, sampling_ratio, aligned))


def roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input,
                       aligned_height, aligned_width, spatial_scale,
                       sampling_ratio, pool_mode, aligned):
    if _on_native(grad_output):
        return _native.roi_align_backward(
            grad_output, rois, argmax_y, argmax_x, grad_input,
            aligned_height=aligned_height, aligned_width=aligned_width,
            spatial_scale=spatial_scale, sampling_ratio=sampling_ratio,
            pool_mode=pool_mode, aligned=aligned)
    _avg_only(pool_mode)
    n, c, h, w = grad_input.shape
    grad_input.copy_(torch.ops.torchvision._roi_align_backward(
        grad_output, rois.to(grad_output.dtype), spatial_scale,
        aligned_height, aligned_width, n, c, h, w, sampling_ratio, aligned))


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    if _native is not None:
        return getattr(_native, name)

    def missing(*args, **kwargs):
        raise NotImplementedError(
            f'mmcv op {name!r} is not available: mmcv was installed without '
            'compiled ops (tools/benchmark/device_run.sh); only nms and '
            'roi_align run, on torchvision')
    return missing


def _check(native_so):  # pragma: no cover - run by device_run.sh --dry-run
    """Compare this module, installed as ``mmcv._ext``, with a compiled
    ``_ext`` (``native_so``): nms, batched_nms, roi_align fwd / bwd."""
    import importlib.util

    import mmcv._ext as shim
    from mmcv.ops import batched_nms
    assert shim.__file__.endswith('.py'), f'not the shim: {shim.__file__}'
    spec = importlib.util.spec_from_file_location('mmcv._ext', native_so)
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + 5 + torch.rand(300, 2, generator=g) * 80], 1)
    scores = torch.rand(300, generator=g)
    for off in (0, 1):
        assert torch.equal(shim.nms(boxes, scores, 0.5, off),
                           native.nms(boxes, scores, iou_threshold=0.5,
                                      offset=off)), f'nms offset={off}'
    _, keep = batched_nms(boxes, scores, torch.randint(0, 5, (300, ),
                                                       generator=g),
                          dict(type='nms', iou_threshold=0.6))
    assert 0 < len(keep) < 300
    checked = ['nms', 'batched_nms']
    if torchvision is not None:
        _check_roi_align(shim, native, g)
        checked.append('roi_align fwd/bwd')
    try:
        shim.deform_conv_forward()
        raise AssertionError('a missing op did not raise')
    except NotImplementedError:
        pass
    import mmdet.models  # noqa: F401
    import mmyolo.models  # noqa: F401
    print(f'mmcv._ext shim: {", ".join(checked)} match the compiled ops; '
          'mmdet / mmyolo import')


def _check_roi_align(shim, native, g):  # pragma: no cover
    x = torch.randn(2, 4, 32, 32, generator=g)
    rois = torch.tensor([[0, 1., 2, 20, 25], [1, 5, 5, 30, 31],
                         [0, 0, 0, 8, 8]])
    kw = dict(aligned_height=7, aligned_width=7, spatial_scale=0.5,
              sampling_ratio=2, pool_mode=1)
    for aligned in (True, False):
        res = []
        for mod in (shim, native):
            out, empty = x.new_zeros(3, 4, 7, 7), x.new_zeros(0)
            mod.roi_align_forward(x, rois, out, empty, empty,
                                  aligned=aligned, **kw)
            grad = torch.zeros_like(x)
            mod.roi_align_backward(torch.ones_like(out) * torch.arange(7.),
                                   rois, empty, empty, grad,
                                   aligned=aligned, **kw)
            res.append((out, grad))
        for a, b in zip(*res):
            assert torch.allclose(a, b, atol=1e-5), f'roi_align {aligned}'


if __name__ == '__main__':  # pragma: no cover
    import sys
    _check(sys.argv[1])
