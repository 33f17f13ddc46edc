# Stage I defaults for Mask R-CNN R50-FPN teachers (paper App. B.2):
# {a_det, a_BN, a_TV, a_l2} = {5.0, 2e-3, 0, 1.5e-5}, 8000 Adam steps.
# Labels at 160 px, images at the test scale (800 x 1333, rounded up to a
# multiple of 32).  The mask branch is skipped (labels have no masks).
# (no teacher / teacher_checkpoint keys here: including configs write
#  synthesis=dict(**_base_.synthesis, teacher=..., teacher_checkpoint=...))
synthesis = dict(
    num_images=2048,
    batch_size=8,
    seed=0,
    label_sampler=dict(type='mmzsq.RandomBoxSampler'),
    stages=[
        dict(resolution=160, iters=8000, label_sampling=True),
        dict(resolution=(800, 1344), iters=8000, label_sampling=False,
             reinit_images=True),
    ],
    als=dict(type='mmzsq.AdaptiveLabelSamplingHook', interval=100,
             warmup=0.267, early_exit=0.933, conf_thr=0.2, iou_thr=0.35,
             min_area=0.01, max_area=0.85, class_balance=False),
    det_loss_weight=5.0,
    prior_loss=dict(type='mmzsq.BNStatisticsLoss', loss_weight=2e-3,
                    first_bn_weight=1.0),
    tv_loss=dict(type='mmzsq.TotalVariationLoss', loss_weight=0.0),
    l2_loss=dict(type='mmzsq.ImageL2Loss', loss_weight=1.5e-5),
    lr=1e-2,
    cutout=dict(prob=0.5, scale=(0.02, 0.2)),
    jitter=0,
    flip=False,
    low_pass_filter=None,
    amp=True,
    channels_last=True,
    log_interval=50)
