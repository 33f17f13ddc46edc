# Stage I defaults for YOLO11 teachers (paper, YOLO11 hyper-parameters):
# {a_det, a_BN, a_TV, a_l2} = {1e-3, 1e-3, 0, 5e-5}, 3000 Adam steps per
# stage (lr 1e-2, cosine, as for YOLOv5), cutout; two stages: adaptive label
# sampling at 160 px, then labels frozen and fresh noise images synthesised
# at 640 px.  The detection loss is mmyolo's YOLOv8 loss (cls BCE + CIoU +
# DFL; YOLO11 has no objectness), fed the packed ``bboxes_labels`` format.
# (no teacher / teacher_checkpoint keys here: tools/train.py fills them from
#  model.architecture / model.init_checkpoint, see mmzsq.utils.zsq_config)
synthesis = dict(
    num_images=2048,
    batch_size=32,
    seed=0,
    label_sampler=dict(type='mmzsq.RandomBoxSampler'),
    stages=[
        dict(resolution=160, iters=3000, label_sampling=True),
        dict(resolution=640, iters=3000, label_sampling=False,
             reinit_images=True),
    ],
    # official 800 / 2800 of 3000 steps, as fractions of the stage
    als=dict(type='mmzsq.AdaptiveLabelSamplingHook', interval=50,
             warmup=0.267, early_exit=0.933, conf_thr=0.2, iou_thr=0.35,
             min_area=0.01, max_area=0.85, class_balance=False),
    det_loss_weight=1e-3,
    prior_loss=dict(type='mmzsq.BNStatisticsLoss', loss_weight=1e-3,
                    first_bn_weight=1.0),
    tv_loss=dict(type='mmzsq.TotalVariationLoss', loss_weight=0.0),
    l2_loss=dict(type='mmzsq.ImageL2Loss', loss_weight=5e-5),
    lr=1e-2,
    cutout=dict(prob=0.5, scale=(0.02, 0.2)),
    jitter=0,
    flip=False,
    low_pass_filter=None,
    amp=True,
    channels_last=True,
    log_interval=50)
