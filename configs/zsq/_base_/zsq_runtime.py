# The one runtime of zero-shot QAT (paper App. B.3), shared by the YOLOv5,
# YOLO11 and Mask R-CNN families: the algorithm skeleton (LSQ student of
# w_bits/a_bits + frozen FP teacher, KD at tau 4, feature distillation over
# backbone and neck, frozen BN statistics), the zero-shot train loop (Stage I
# on first use, then Stage II), the synthetic-set dataset, Adam without weight
# decay, iteration-based hooks and logs, and the COCO val/test data root.
# Variables only: a family base `_base_`s this next to its upstream detector
# config (mmengine refuses a key in two bases), assigns them and states its
# differences (loss weights, KD loss, lr, schedule, Stage I, pipeline).

# val/test: COCO val2017 (or $MMZSQ_COCO_ROOT, e.g. ../shared/data/
# coco_tiny_val2017/), the upstream's CocoMetric: the logs report the
# quantized mAP
zsq_data_root = '{{$MMZSQ_COCO_ROOT:data/coco/}}'
zsq_val_dataloader = dict(num_workers=2, persistent_workers=False,
                          dataset=dict(data_root=zsq_data_root))

zsq_algorithm = dict(
    _delete_=True,
    type='mmzsq.QuantDistillAlgorithm',
    init_checkpoint=None,  # float teacher = student init; size configs
    quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=8, a_bits=8),
    quant_mode='qat',
    feat_layers=['backbone', 'neck'],
    bn_mode='frozen')

# Stage II data: Stage I's synthetic set (COCO format), written to the
# dataset's data_root by the loop when missing; the loop fills in the set's
# classes (no metainfo here).  `synthesis=None`: no Stage I (real data).
zsq_train_cfg = dict(_delete_=True, type='mmzsq.ZSQTrainLoop',
                     max_iters=2000, val_interval=500)
# InfiniteSampler: iteration-based training over small sets (16-64 images,
# 2-8 iterations per epoch at batch 8); with the upstream DefaultSampler
# MMEngine's loop sleeps 2 s and restarts the workers at every epoch end
# (measured in `make demo`: 1.0 s of each 1.4 s iteration)
# num_workers='auto' (mmzsq.ZSQTrainLoop): none on a CPU-only machine,
# where workers take the cores the training step runs on; 2 with CUDA
zsq_train_dataloader = dict(batch_size=8, num_workers='auto',
                            persistent_workers=False,
                            sampler=dict(type='InfiniteSampler',
                                         shuffle=True))
zsq_set = dict(ann_file='annotations.json', data_prefix=dict(img='images/'),
               filter_cfg=dict(filter_empty_gt=False, min_size=2))

# fused Adam: one kernel over all parameter tensors (YOLOv5n W4A8, 401
# tensors, clip + step: 4.8 ms against 17.4 ms for torch's default per-tensor
# loop on CPU, 2 threads, measured), over one param group per lr setting
# (MMEngine's default constructor makes one group per parameter once a
# paramwise_cfg is set, and a fused step then runs group by group)
zsq_optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    constructor='mmzsq.MergedGroupsOptimWrapperConstructor',
    optimizer=dict(type='Adam', lr=1e-4, weight_decay=0.0, fused=True),
    clip_grad=dict(max_norm=10.0))
# Adam moves every parameter by ~lr per step: at 1e-4 the weights drift away
# from the teacher in short runs (measured: W8A8 YOLOv5n -9 mAP after 25
# iters); weights/biases at lr/10, LSQ step sizes/offsets at lr.
# (mmengine matches the longest key first)
zsq_lsq_paramwise_cfg = dict(custom_keys={
    'fake_quant.': dict(lr_mult=1.0),
    '.weight': dict(lr_mult=0.1), '.bias': dict(lr_mult=0.1)})
# 4-bit weights (the W4 configs): the official recipe's Adam 1e-4 on the
# weights too, with a linear warmup over the first 100 iterations (chained
# with the cosine: both start at 0, so runs shorter than the warmup stay
# valid).
# Measured on YOLOv5n, our Stage II on 128 real images, 300 it: W4A8
# +3.0 mAP over lr/10, W8A8 -2.1 (docs/benchmarks.md); W8 and W6 (not
# measured) keep lr/10.
#   optim_wrapper = dict(paramwise_cfg=_base_.zsq_low_bit_paramwise_cfg)
#   param_scheduler = _base_.zsq_warmup_param_scheduler
zsq_low_bit_paramwise_cfg = dict(custom_keys={
    'fake_quant.': dict(lr_mult=1.0),
    '.weight': dict(lr_mult=1.0), '.bias': dict(lr_mult=1.0)})
zsq_warmup_param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, eta_min=1e-6)]
# (cosine schedules without T_max end with train_cfg.max_iters: mmengine's
#  Runner sets their `end`)
zsq_default_hooks = dict(
    param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'),
    checkpoint=dict(_delete_=True, type='CheckpointHook', by_epoch=False,
                    interval=500, max_keep_ckpts=2, save_best=None),
    logger=dict(type='LoggerHook', interval=10))
zsq_log_processor = dict(by_epoch=False)

# reproducible runs (mmengine draws a random seed otherwise): the same seed
# gives the same Stage I set and, for randomly initialised size configs, the
# same teacher weights, whose hash the set records
randomness = dict(seed=0)
