# Stage I for Mask R-CNN R50-FPN teachers (paper App. B.2): the default
# (./synthesis.py) with {a_det, a_BN, a_TV, a_l2} = {5.0, 2e-3, 0, 1.5e-5},
# 8000 Adam steps, batches of 8, label sampling every 100 steps.  Labels at
# 160 px, images at the test scale (800 x 1333, rounded up to a multiple of
# 32).  The mask branch is skipped (labels have no masks).
_base_ = './synthesis.py'
synthesis = dict(
    batch_size=8,
    stages=[
        dict(resolution=160, iters=8000, label_sampling=True),
        dict(resolution=(800, 1344), iters=8000, label_sampling=False,
             reinit_images=True),
    ],
    # ALS window as YOLO11's (the official Mask R-CNN code has none)
    als=dict(interval=100, warmup=0.2667, early_exit=0.9333),
    det_loss_weight=5.0,
    prior_loss=dict(loss_weight=2e-3, first_bn_weight=1.0),
    l2_loss=dict(loss_weight=1.5e-5),
    # the YOLOv5 default's official-code priors do not apply here
    tv_loss=dict(_delete_=True, type='mmzsq.TotalVariationLoss',
                 loss_weight=0.0),
    lr=1e-2, keep_best=False)
