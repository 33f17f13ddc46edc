# YOLOv5 v6.1 zero-shot QAT (paper App. B.3): LSQ student + frozen FP teacher,
# loss 0.04*L_detect + 0.1*L_KD + 1.0*L_feat, Adam lr 1e-4, tau 4.
_base_ = './data_yolov5_synthetic.py'

# val/test: COCO val2017 (or $MMZSQ_COCO_ROOT, e.g. ../shared/data/
# coco_tiny_val2017/), CocoMetric bbox: the logs report the quantized mAP
data_root = '{{$MMZSQ_COCO_ROOT:data/coco/}}'
val_dataloader = dict(num_workers=2, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + _base_.val_ann_file)
test_evaluator = val_evaluator

model = dict(
    _delete_=True,
    type='mmzsq.QuantDistillAlgorithm',
    # BN stats are frozen (freeze_bn_stats): no SyncBN, which is GPU-only
    architecture=dict(**_base_.model, use_syncbn=False),
    init_checkpoint=None,  # float teacher = student init; size configs
    quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=8, a_bits=8),
    quant_mode='qat',
    loss_weights=dict(det=0.04, kd=0.1, feat=1.0),
    kd_loss=dict(type='mmzsq.YOLOKDLoss', tau=4.0),
    feat_layers=['backbone', 'neck'],
    freeze_bn_stats=True)

max_iters = 2000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters=max_iters, val_interval=500)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, weight_decay=0.0),
    # Adam moves every parameter by ~lr per step: at 1e-4 the weights drift
    # away from the teacher in short runs (measured: W8A8 YOLOv5n -9 mAP
    # after 25 iters); weights/biases 1e-5, LSQ step sizes/offsets 1e-4.
    # (mmengine matches the longest key first)
    paramwise_cfg=dict(custom_keys={
        'fake_quant.': dict(lr_mult=1.0),
        '.weight': dict(lr_mult=0.1), '.bias': dict(lr_mult=0.1)}),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        T_max=max_iters, eta_min=1e-6)]
default_hooks = dict(
    param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'),
    checkpoint=dict(_delete_=True, type='CheckpointHook', by_epoch=False,
                    interval=500, max_keep_ckpts=2, save_best=None),
    logger=dict(type='LoggerHook', interval=10))
log_processor = dict(by_epoch=False)
custom_hooks = []  # no EMA: it would average the quantizer state
load_from = None
