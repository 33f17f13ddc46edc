# YOLO11 zero-shot QAT (paper, YOLO11 hyper-parameters): LSQ student + frozen
# FP teacher, loss 0.01*L_detect + 0.1*L_KD + 1.0*L_feat, Adam lr 1e-5,
# tau 4; L_feat over the backbone and neck outputs.
# L_KD is mmzsq.YOLOv8KDLoss: YOLO11's head has no objectness, so it compares
# the class distributions and the DFL box distributions.
# First conv (backbone.stem.conv) and the final prediction convs
# (bbox_head.head_module.{cls,reg}_preds.{i}.2) stay float: the quantizer's
# skip_first and DEFAULT_SKIP_PATTERNS.
_base_ = './data_yolo11_synthetic.py'

# val/test: COCO val2017 (or $MMZSQ_COCO_ROOT), CocoMetric bbox
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
    loss_weights=dict(det=0.01, kd=0.1, feat=1.0),
    kd_loss=dict(type='mmzsq.YOLOv8KDLoss', tau=4.0),
    feat_layers=['backbone', 'neck'],
    freeze_bn_stats=True)

max_iters = 2000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters=max_iters, val_interval=500)
# one LR (1e-5) for weights, biases and LSQ step sizes
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-5, weight_decay=0.0),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        T_max=max_iters, eta_min=1e-7)]
default_hooks = dict(
    param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'),
    checkpoint=dict(_delete_=True, type='CheckpointHook', by_epoch=False,
                    interval=500, max_keep_ckpts=2, save_best=None),
    logger=dict(type='LoggerHook', interval=10))
log_processor = dict(by_epoch=False)
custom_hooks = []  # no EMA: it would average the quantizer state
load_from = None
