# The Stage I default (train_cfg.synthesis of mmzsq.ZSQTrainLoop), as for
# YOLOv5 teachers (paper §3, App. B.2, Table 7): {a_det, a_BN, a_TV, a_l2} =
# {0.5, 0.01, 0, 5e-4}, 2500 Adam steps (lr 1e-2, cosine), cutout; two
# stages: adaptive label sampling at 160 px, then labels frozen and fresh
# noise images synthesised at 640 px.  Other families state their
# differences in ./synthesis_*.py.  No teacher here: the teacher is the
# algorithm's own (a plain float detector's, for Stage-I-only configs).
synthesis = dict(
    num_images=2048,
    batch_size=32,
    seed=0,
    label_sampler=dict(type='mmzsq.RandomBoxSampler'),  # paper Table 6
    stages=[
        dict(resolution=160, iters=2500, label_sampling=True),
        dict(resolution=640, iters=2500, label_sampling=False,
             reinit_images=True),
    ],
    # official 800 / 2800 of 3000 steps, as fractions of the stage
    als=dict(type='mmzsq.AdaptiveLabelSamplingHook', interval=50,
             warmup=0.267, early_exit=0.933, conf_thr=0.2, iou_thr=0.35,
             min_area=0.01, max_area=0.85, class_balance=False),
    det_loss_weight=0.5,
    prior_loss=dict(type='mmzsq.BNStatisticsLoss', loss_weight=0.01,
                    first_bn_weight=1.0),
    tv_loss=dict(type='mmzsq.TotalVariationLoss', loss_weight=0.0),
    l2_loss=dict(type='mmzsq.ImageL2Loss', loss_weight=5e-4),
    lr=1e-2,  # the official YOLO code uses 0.2
    cutout=dict(prob=0.5, scale=(0.02, 0.2)),
    jitter=0,
    flip=False,
    low_pass_filter=None,  # SynQ idea, e.g. dict(d0=0.5, interval=50)
    amp=True,
    channels_last=True,
    log_interval=50)
