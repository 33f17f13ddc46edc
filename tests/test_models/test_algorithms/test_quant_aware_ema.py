"""EMA of a quantized model (mmzsq.QuantAwareEMA with mmengine's EMAHook)."""
import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage

from mmzsq.models.algorithms import QuantAwareEMA
from mmzsq.models.fake_quants import LSQFakeQuantize
from mmzsq.models.quantizers import EagerLSQQuantizer, fake_quantizers
from tests.conftest import needs_coco128, needs_coco_tiny, needs_yolov5n
from tests.data.qat_configs import small_yolo_cfg


def _tiny_quantized(k=3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    return EagerLSQQuantizer(w_bits=4, a_bits=8, skip_first=False,
                             a_init_batches=k).prepare(model)


def _quant_state(model):
    return {f'{n}.{k}': v.clone() for n, fq in fake_quantizers(model)
            for k, v in fq.state_dict().items()}


def _train(model, ema, steps=4):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(steps):
        x = torch.randn(2, 3, 8, 8) * (i + 1)
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        ema.update_parameters(model)


def test_quantizer_state_is_copied_weights_are_averaged():
    model = _tiny_quantized(k=3)
    ema = QuantAwareEMA(model, momentum=0.5, update_buffers=True)
    _train(model, ema)
    live, avg = _quant_state(model), _quant_state(ema.module)
    per_quantizer = len(LSQFakeQuantize().state_dict())
    assert live.keys() == avg.keys() and len(live) == 4 * per_quantizer
    for k in live:
        assert torch.equal(live[k], avg[k]), k
    assert avg['3.input_fake_quant.initialized'].item() == 1
    w = '3.weight'
    assert not torch.equal(ema.module.state_dict()[w], model.state_dict()[w])
    # mmengine's plain EMA keeps the flag of its first update (0 here: the
    # k=3 estimate was not complete) and averages the step sizes
    model = _tiny_quantized(k=3)
    plain = ExponentialMovingAverage(model, momentum=0.5,
                                     update_buffers=True)
    _train(model, plain)
    bad = _quant_state(plain.module)
    assert bad['3.input_fake_quant.initialized'].item() == 0
    assert not torch.equal(bad['3.input_fake_quant.scale'],
                           _quant_state(model)['3.input_fake_quant.scale'])


@needs_yolov5n
@needs_coco128
@needs_coco_tiny
def test_ema_hook_checkpoint_has_the_live_quant_state(yolov5n_mmyolo_ckpt,
                                                      tmp_path):
    from mmzsq.registry import MODELS
    from mmzsq.utils.cli import build_runner
    cfg = small_yolo_cfg('configs/zsq/yolov5_n_w4a8.py', tmp_path,
                         yolov5n_mmyolo_ckpt, res=128, iters=3, n_train=4,
                         val=False)
    cfg.model.quantizer.a_init_batches = 2
    cfg.custom_hooks = [dict(type='EMAHook', ema_type='mmzsq.QuantAwareEMA',
                             momentum=0.3, update_buffers=True)]
    runner = build_runner(cfg)
    runner.train()
    live = runner.model.state_dict()
    ckpt = torch.load(tmp_path / 'iter_3.pth', map_location='cpu',
                      weights_only=False)
    saved = ckpt['state_dict']  # EMAHook swaps the EMA weights in
    fq = [k for k in live if 'fake_quant.' in k]
    assert len(fq) == 56 * 2 * len(LSQFakeQuantize().state_dict())
    for k in fq:
        assert torch.equal(saved[k], live[k]), k
    w = 'architecture.backbone.stage1.0.conv.weight'
    assert not torch.equal(saved[w], live[w])  # averaged weights
    # the saved (EMA) quantized model predicts finite boxes
    algo = MODELS.build(cfg.model)
    algo.load_state_dict(saved)
    algo.eval()
    data = next(iter(runner.val_dataloader))
    with torch.no_grad():
        preds = algo.test_step(data)
    boxes = torch.cat([p.pred_instances.bboxes for p in preds])
    assert boxes.numel() > 0 and torch.isfinite(boxes).all()
