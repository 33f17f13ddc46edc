# YOLOv5 v6.1 zero-shot QAT (paper App. B.3): the runtime of ./zsq_runtime.py
# with loss 0.04*L_detect + 0.1*L_KD + 1.0*L_feat, Adam lr 1e-4 (weights and
# biases 1e-5), tau 4, 2000 iterations; Stage I: ./synthesis.py.
_base_ = ['./data_yolov5_synthetic.py', './synthesis.py']

data_root = _base_.zsq_data_root  # COCO val2017 or $MMZSQ_COCO_ROOT
val_dataloader = test_dataloader = _base_.zsq_val_dataloader
val_evaluator = test_evaluator = dict(
    ann_file=data_root + _base_.val_ann_file)

model = dict(
    _base_.zsq_algorithm,
    # student BN frozen by default (bn_mode): no SyncBN, which is GPU-only
    architecture=dict(**_base_.model, use_syncbn=False),
    loss_weights=dict(det=0.04, kd=0.1, feat=1.0),
    kd_loss=dict(type='mmzsq.YOLOKDLoss', tau=4.0),
    # torch.compile'd networks in runs of >= 1000 steps (both stages):
    # YOLOv5n, 2 CPU cores, a Stage II step 16-20 % shorter, a Stage I
    # batch 22 instead of 31 min; a compile costs 0.5-3 min
    # (docs/benchmarks.md).  Shorter runs (tests, the demo) stay eager.
    compile='auto')
train_cfg = dict(_base_.zsq_train_cfg,
                 synthesis=dict(_base_.synthesis, compile='auto'))
optim_wrapper = dict(_base_.zsq_optim_wrapper,
                     paramwise_cfg=_base_.zsq_lsq_paramwise_cfg)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        eta_min=1e-6)]
default_hooks = _base_.zsq_default_hooks
log_processor = _base_.zsq_log_processor
custom_hooks = []  # no EMA: it would average the quantizer state

# W4A8 (./yolov5_*_w4a8.py): TASKQ-style IoU term, 1 - IoU of the student's
# and teacher's decoded boxes where the teacher is confident.  Measured on
# YOLOv5n, cpu-medium, third draw, 3 seeds: W4A8 0.245 vs 0.226 (every seed
# above every plain seed); at W6A6 it lost (docs/benchmarks.md), so only the
# W4A8 configs take it.
#   model = dict(loss_weights=dict(iou=1.0), iou_loss=_base_.zsq_w4a8_iou_loss)
zsq_w4a8_iou_loss = dict(type='mmzsq.DecodedBoxIoULoss', conf_thr=0.25)

# sizes (./yolov5_{n,s,m,l}.py): mmyolo's v6.1 [deepen, widen] factors, as
# deltas of the architecture
yolov5_factors = dict(n=(0.33, 0.25), s=(0.33, 0.5), m=(0.67, 0.75),
                      l=(1.0, 1.0))
yolov5_archs = {
    k: dict(backbone=dict(deepen_factor=d, widen_factor=w),
            neck=dict(deepen_factor=d, widen_factor=w),
            bbox_head=dict(head_module=dict(widen_factor=w)))
    for k, (d, w) in yolov5_factors.items()}
