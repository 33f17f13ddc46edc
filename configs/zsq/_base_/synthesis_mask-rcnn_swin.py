# Stage I defaults for Mask R-CNN Swin-T/S teachers (paper App. B.2):
# {a_det, a_prior, a_TV, a_l2} = {10.0, 1.0, 0, 1e-3}, 4000 Adam steps; the
# LayerNorm backbone has no BN statistics, so the prior is PSAQ-ViT's
# patch-similarity entropy over the Swin blocks (the FPN/heads' BNs, if any,
# are not used).
# (no teacher / teacher_checkpoint keys here: including configs write
#  synthesis=dict(**_base_.synthesis, teacher=..., teacher_checkpoint=...))
synthesis = dict(
    num_images=2048,
    batch_size=8,
    seed=0,
    label_sampler=dict(type='mmzsq.RandomBoxSampler'),
    stages=[
        dict(resolution=160, iters=4000, label_sampling=True),
        dict(resolution=(800, 1344), iters=4000, label_sampling=False,
             reinit_images=True),
    ],
    als=dict(type='mmzsq.AdaptiveLabelSamplingHook', interval=100,
             warmup=0.267, early_exit=0.933, conf_thr=0.2, iou_thr=0.35,
             min_area=0.01, max_area=0.85, class_balance=False),
    det_loss_weight=10.0,
    prior_loss=dict(type='mmzsq.PatchSimilarityEntropyLoss', loss_weight=1.0,
                    module_types=('SwinBlock', )),
    tv_loss=dict(type='mmzsq.TotalVariationLoss', loss_weight=0.0),
    l2_loss=dict(type='mmzsq.ImageL2Loss', loss_weight=1e-3),
    lr=1e-2,
    cutout=dict(prob=0.5, scale=(0.02, 0.2)),
    jitter=0,
    flip=False,
    low_pass_filter=None,
    amp=True,
    channels_last=True,
    log_interval=50)
