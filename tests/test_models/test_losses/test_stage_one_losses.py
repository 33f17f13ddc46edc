"""Stage I losses (BN statistics, patch-similarity entropy, TV, L2) and
the detector adapter, on the real YOLOv5n and tiny Mask R-CNN R18 / Swin."""
import os.path as osp

import pytest
import torch

from tests.conftest import ROOT, needs_yolov5n


def _yolov5n_cfg():
    from mmengine.config import Config
    return Config.fromfile(
        osp.join(ROOT, 'configs/yolov5/yolov5_n-v61_fp_coco.py'))


def _build(model_cfg, scope, ckpt=None):
    import mmdet.models  # noqa: F401
    import mmyolo.models  # noqa: F401
    from mmdet.registry import MODELS as DM
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    from mmyolo.registry import MODELS as YM
    with DefaultScope.overwrite_default_scope(scope):
        model = (YM if scope == 'mmyolo' else DM).build(model_cfg)
    if ckpt:
        load_checkpoint(model, ckpt, map_location='cpu', logger='silent')
    return model


def tiny_mask_rcnn_cfg(swin: bool = False):
    """mmdet's Mask R-CNN R50-FPN config shrunk: ResNet-18 with 16 base
    channels, or Swin with embed_dims 32 and depths (1, 1, 1, 1)."""
    import mmdet
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(
        osp.dirname(mmdet.__file__),
        '.mim/configs/_base_/models/mask-rcnn_r50_fpn.py')).model
    if swin:
        cfg.backbone = dict(type='SwinTransformer', embed_dims=32,
                            depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8),
                            window_size=7, out_indices=(0, 1, 2, 3),
                            init_cfg=None, convert_weights=False)
        chans = [32, 64, 128, 256]
    else:
        cfg.backbone = dict(type='ResNet', depth=18, base_channels=16,
                            out_indices=(0, 1, 2, 3), frozen_stages=-1,
                            norm_cfg=dict(type='BN', requires_grad=True),
                            norm_eval=True, init_cfg=None)
        chans = [16, 32, 64, 128]
    cfg.neck.in_channels, cfg.neck.out_channels = chans, 32
    cfg.rpn_head.in_channels = cfg.rpn_head.feat_channels = 32
    r = cfg.roi_head
    r.bbox_roi_extractor.out_channels = r.bbox_head.in_channels = 32
    r.bbox_head.fc_out_channels = 64
    r.mask_roi_extractor.out_channels = r.mask_head.in_channels = 32
    r.mask_head.conv_out_channels = 32
    return cfg


def _perturb_bn(model):
    """Random teachers have running stats (0, 1); give them real targets."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) *
                                 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) +
                                0.5)


def _labels(size):
    s = size / 96
    return [(torch.tensor([[10., 10., 60., 70.]]) * s, torch.tensor([3])),
            (torch.tensor([[20., 5., 90., 50.]]) * s, torch.tensor([7]))]


def _term_decreases(adapter, term, prior=None, size=96, steps=6, lr=0.05):
    """Optimise images on one loss term alone; return (first, last)."""
    from mmzsq.models.losses import ImageL2Loss, TotalVariationLoss
    torch.manual_seed(0)
    x = (0.5 + 0.2 * torch.randn(2, 3, size, size)).clamp(0, 1)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    labels = _labels(size)
    vals = []
    for _ in range(steps):
        opt.zero_grad()
        inp = adapter.normalize(x)
        if prior is not None:
            prior.reset()
        if term == 'det':
            loss = adapter.sum_losses(adapter.loss(inp, labels))
        elif term == 'prior':
            adapter.model.extract_feat(inp)
            loss = prior()
        elif term == 'tv':
            loss = TotalVariationLoss()(x)
        else:
            loss = ImageL2Loss()(inp)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        vals.append(float(loss.detach()))
    return vals[0], min(vals[-2:])


@needs_yolov5n
@pytest.mark.parametrize('term', ['det', 'prior', 'tv', 'l2'])
def test_loss_terms_decrease_yolov5n(yolov5n_mmyolo_ckpt, term):
    from mmzsq.models.losses import BNStatisticsLoss
    from mmzsq.synthesis import DetectorAdapter
    model = _build(_yolov5n_cfg().model, 'mmyolo', yolov5n_mmyolo_ckpt)
    adapter = DetectorAdapter(model)
    assert adapter.sample_format == 'packed'
    prior = BNStatisticsLoss(first_bn_weight=2.0).register(model)
    assert prior.num_layers > 50
    first, last = _term_decreases(adapter, term, prior)
    prior.remove()
    assert last < first, (term, first, last)


@pytest.mark.parametrize('swin', [False, True], ids=['r18', 'swin'])
def test_loss_terms_decrease_tiny_mask_rcnn(swin):
    from mmzsq.models.losses import (BNStatisticsLoss,
                                     PatchSimilarityEntropyLoss)
    from mmzsq.synthesis import DetectorAdapter
    torch.manual_seed(0)
    model = _build(tiny_mask_rcnn_cfg(swin), 'mmdet')
    _perturb_bn(model)
    adapter = DetectorAdapter(model)
    assert adapter.sample_format == 'list'
    # the mask branch is skipped, box losses flow
    losses = adapter.loss(adapter.normalize(torch.rand(2, 3, 96, 96)),
                          _labels(96))
    assert 'loss_mask' not in losses and 'loss_rpn_cls' in losses and \
        'loss_bbox' in losses
    assert model.roi_head.mask_head is not None  # restored
    if swin:
        prior = PatchSimilarityEntropyLoss().register(model)
        assert prior.num_layers == 4
        with pytest.raises(ValueError, match='PatchSimilarityEntropy'):
            BNStatisticsLoss().register(model.backbone)
    else:
        prior = BNStatisticsLoss().register(model)
    for term in ('det', 'prior', 'tv', 'l2'):
        first, last = _term_decreases(adapter, term, prior, steps=5)
        assert last < first, (swin, term, first, last)
    prior.remove()


def test_bn_loss_matches_definition_and_hooks_removed():
    from mmzsq.models.losses import BNStatisticsLoss
    bn = torch.nn.BatchNorm2d(4).eval()
    bn.running_mean.fill_(1.)
    bn.running_var.fill_(2.)
    net = torch.nn.Sequential(bn, torch.nn.BatchNorm2d(4).eval())
    loss = BNStatisticsLoss(first_bn_weight=3.0).register(net)
    x = torch.randn(2, 4, 5, 5)
    net(x)
    value = loss()
    mu, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    first = (mu - 1).norm() + (var - 2).norm()
    with torch.no_grad():
        y = (x - 1) / (2 + bn.eps)**0.5 * bn.weight[None, :, None, None]
    second = y.mean((0, 2, 3)).norm() + (
        y.var((0, 2, 3), unbiased=False) - 1).norm()
    assert torch.allclose(value, 3 * first + second, atol=1e-4)
    loss.remove()
    # per image: each image's own statistics, a loss per image
    per = BNStatisticsLoss(per_image=True).register(bn)
    bn(x)
    mu_i, var_i = x.mean((2, 3)), x.var((2, 3), unbiased=False)
    want = (mu_i - 1).norm(dim=1) + (var_i - 2).norm(dim=1)
    got = per()
    assert got.shape == (2, ) and torch.allclose(got, want, atol=1e-4)
    per.remove()
    net(x)
    assert not bn._forward_hooks and not loss._losses


def test_total_variation_norm_form():
    """reduction='norm' (DeepInversion's loss_var_l2): the batch L2 norms
    of the four neighbour differences, summed; zero on a flat image."""
    from mmzsq.models.losses import TotalVariationLoss
    x = torch.zeros(2, 3, 4, 5)
    assert float(TotalVariationLoss(reduction='norm')(x + 0.3)) == 0.
    x[..., ::2] = 1.0  # vertical stripes: every horizontal/diagonal step
    n = 2 * 3
    want = (n * 4 * 4) ** 0.5 + 0 + 2 * (n * 3 * 4) ** 0.5
    got = TotalVariationLoss(reduction='norm', loss_weight=2.)(x)
    assert abs(float(got) - 2 * want) < 1e-4


def test_total_variation_norm_gradient_is_autograds():
    """The one-node TV-L2 (its gradient written into one buffer) against
    autograd through the four slices and norms, incl. a flat direction
    (zero norm: no gradient, no NaN) and a bf16 input."""
    from mmzsq.models.losses import TotalVariationLoss
    torch.manual_seed(0)

    def plain(x):
        x = x.float()
        ds = (x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1],
              x[..., 1:, :-1] - x[..., :-1, 1:],
              x[..., :-1, :-1] - x[..., 1:, 1:])
        return 0.5 * sum(torch.linalg.vector_norm(d) for d in ds)

    tv = TotalVariationLoss(reduction='norm', loss_weight=0.5)
    rows = torch.rand(2, 3, 1, 9).expand(2, 3, 6, 9)  # vertical diff = 0
    for x in (torch.rand(2, 3, 7, 9), rows.clone(),
              torch.rand(2, 3, 8, 8).bfloat16()):
        xs = x.clone().requires_grad_(True)
        xp = x.clone().requires_grad_(True)
        got, want = tv(xs), plain(xp)
        assert torch.equal(got, want)
        got.backward()
        want.backward()
        assert xs.grad.dtype == x.dtype and torch.isfinite(xs.grad).all()
        if x.dtype == torch.float:
            assert torch.allclose(xs.grad, xp.grad, rtol=1e-5, atol=1e-7)
        else:
            assert torch.allclose(xs.grad.float(), xp.grad.float(),
                                  rtol=1e-2, atol=1e-4)
        assert xs.grad.abs().sum() > 0


def _bn_loss_autograd(bn, x, per_image):
    """The hook's formula through plain autograd (the former hook)."""
    dims = [2, 3] if per_image else [0, 2, 3]
    mean = x.mean(dims)
    var = ((x * x).mean(dims) - mean * mean).clamp(min=0)
    d = 1 if per_image else None
    return (mean - bn.running_mean).norm(dim=d) + \
        (var - bn.running_var).norm(dim=d)


@pytest.mark.parametrize('per_image', [False, True])
@pytest.mark.parametrize('channels_last', [False, True])
def test_bn_loss_one_node_moments_match_autograd(per_image, channels_last):
    """The hook's moments (one autograd node, fused gradient) and the
    distances of all layers at once: the loss values and the input gradient
    to 1e-6 (relative)."""
    from mmzsq.models.losses import BNStatisticsLoss
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(16).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    x = torch.randn(4, 16, 12, 10) * 1.5 + 0.7
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    r = torch.rand(4) + 0.5 if per_image else torch.tensor(1.3)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    loss = BNStatisticsLoss(per_image=per_image).register(bn)
    bn(x1)
    got = loss()
    (got * r).sum().backward()
    want = _bn_loss_autograd(bn, x2, per_image)
    (want * r).sum().backward()
    loss.remove()
    # the norms as sqrt(sum of squares) of all layers at once
    assert torch.allclose(got, want, rtol=1e-6)
    assert x1.grad.abs().max() > 0
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-6,
                          atol=1e-6 * x2.grad.abs().max().item())
    # the variance term alone and the mean term alone
    from mmzsq.models.losses.bn_statistics_loss import _Moments
    for m, v in ((1.0, 0.0), (0.0, 1.0)):
        a = x.clone().requires_grad_(True)
        b = x.clone().requires_grad_(True)
        mean, sq = _Moments.apply(a, [0, 2, 3])
        (m * mean.sum() + v * sq.sum()).backward()
        (m * b.mean([0, 2, 3]).sum() + v * (b * b).mean([0, 2, 3]).sum()
         ).backward()
        assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-9)
    # one output only (the other's gradient is None)
    for i in (0, 1):
        a = x.clone().requires_grad_(True)
        _Moments.apply(a, [0, 2, 3])[i].sum().backward()
        b = x.clone().requires_grad_(True)
        (b.mean([0, 2, 3]) if i == 0 else (b * b).mean([0, 2, 3])
         ).sum().backward()
        assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-9)


def test_bn_loss_traced_without_an_autograd_function():
    """Inside ``torch.compile`` (``synthesis.compile``) the hook's moments
    are plain operations, so AOTAutograd caches the teacher's graphs on
    disk, with the eager loss and gradient."""
    from mmzsq.models.losses import BNStatisticsLoss
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(8).eval()
    bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 8, 6, 6)
    loss = BNStatisticsLoss().register(bn)
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def step(inp):
        bn(inp)
        return loss()

    torch._dynamo.reset()
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    got = torch.compile(step, backend=record, fullgraph=True)(a)
    got.backward()
    want = step(b)
    want.backward()
    loss.remove()
    assert graphs
    assert not [n for g in graphs for n in g.graph.nodes
                if 'autograd_function_apply' in str(n.target)]
    assert torch.allclose(got, want, rtol=1e-6)
    assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('per_image', [False, True])
def test_bn_loss_of_layers_of_different_widths_matches_autograd(per_image):
    """All layers' distances at once (concatenated channels, per-layer
    sums): the per-layer norms through plain autograd, the first layer
    weighed; a layer at distance 0 adds 0 and no NaN."""
    from mmzsq.models.losses import BNStatisticsLoss
    torch.manual_seed(0)
    bn1, bn2 = torch.nn.BatchNorm2d(4).eval(), torch.nn.BatchNorm2d(6).eval()
    for bn in (bn1, bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    conv = torch.nn.Conv2d(4, 6, 1)
    x = torch.randn(3, 4, 6, 5)
    xs, xp = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    loss = BNStatisticsLoss(first_bn_weight=2.5, loss_weight=0.1,
                            per_image=per_image)
    loss.register(torch.nn.Sequential(bn1, conv, bn2))
    bn2(conv(bn1(xs)))
    got = loss()
    y = conv(bn1(xp))
    want = 0.1 * (2.5 * _bn_loss_autograd(bn1, xp, per_image) +
                  _bn_loss_autograd(bn2, y, per_image))
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-6)
    got.sum().backward()
    want.sum().backward()
    assert torch.allclose(xs.grad, xp.grad, rtol=1e-5, atol=1e-7)
    # running statistics equal to the batch's: distance 0, gradient 0
    bn = torch.nn.BatchNorm2d(4).eval()
    bn.running_mean.copy_(x.mean((0, 2, 3)))
    bn.running_var.copy_(x.var((0, 2, 3), unbiased=False))
    x0 = x.clone().requires_grad_(True)
    zero = BNStatisticsLoss().register(bn)
    bn(x0)
    value = zero()
    value.backward()
    assert float(value) < 1e-6 and torch.isfinite(x0.grad).all()
    zero.remove()
    loss.remove()


def test_total_variation_bad_settings_name_the_fix():
    from mmzsq.models.losses import TotalVariationLoss
    from mmzsq.utils.errors import ConfigError
    with pytest.raises(ConfigError, match="'mean', 'none' or 'norm'"):
        TotalVariationLoss(reduction='sum')
    with pytest.raises(ConfigError, match='p must be 1 or 2'):
        TotalVariationLoss(p=3)
