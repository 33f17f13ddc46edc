# The Stage I default (train_cfg.synthesis of mmzsq.ZSQTrainLoop), as for
# YOLOv5 teachers, following the official code (DFQ-Dojo/dfq-toolkit,
# yolov5/README.md): detection loss 0.5, BN statistics 0.01 with the first
# BN weighed 2.0 more (x201), TV-L2 5e-4 in DeepInversion's norm form, no
# image-L2, 2500 Adam steps at lr 0.2 (cosine), random erasing, the
# lowest-loss snapshot; YOLOv5's objectness gain scaled with the image area
# as YOLOv5 does.  (The paper's text gives lr 1e-2 and an image-L2 prior;
# the official commands use the values here.)  Two stages: adaptive label
# sampling at 160 px, then labels frozen and fresh noise images
# synthesised at 640 px.  Other families state their
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
    # the official YOLOv5 command: ALS every 50 steps from step 800 of
    # 2500 to the end (its early exit, 2800, lies past the stage), as
    # fractions of the stage
    als=dict(type='mmzsq.AdaptiveLabelSamplingHook', interval=50,
             warmup=0.32, early_exit=1.0, conf_thr=0.2, iou_thr=0.35,
             min_area=0.01, max_area=0.85, class_balance=False),
    det_loss_weight=0.5,
    prior_loss=dict(type='mmzsq.BNStatisticsLoss', loss_weight=0.01,
                    first_bn_weight=201.0),
    tv_loss=dict(type='mmzsq.TotalVariationLoss', loss_weight=5e-4, p=2,
                 reduction='norm'),
    l2_loss=dict(type='mmzsq.ImageL2Loss', loss_weight=0.0),
    # YOLOv5's objectness gain is (imgsz / 640)^2: 1/16 in the 160-px label
    # stage (at full weight no second object ever forms, docs/benchmarks.md)
    resolution_scaled_terms=dict(loss_obj=640),
    keep_best=True,
    lr=0.2,
    cutout=dict(prob=0.5, scale=(0.02, 0.2)),
    jitter=0,
    flip=False,
    # low_pass_filter: off (SynQ's Gaussian low-pass filter on the
    # images, not measured).  Not listed here, so that a config or
    # --cfg-options train_cfg.synthesis.low_pass_filter.d0=0.5 can set
    # it: dict(d0=0.5, interval=50, start=0.0, stop=1.0)
    amp=True,
    channels_last=True,
    log_interval=50)
