# Stage I for YOLO11 teachers (paper, YOLO11 hyper-parameters): the default
# (./synthesis.py) with {a_det, a_BN, a_TV, a_l2} = {1e-3, 1e-3, 0, 5e-5} and
# 3000 Adam steps per stage.  The detection loss is mmyolo's YOLOv8 loss (cls
# BCE + CIoU + DFL; YOLO11 has no objectness), fed the packed
# ``bboxes_labels`` format.
_base_ = './synthesis.py'
synthesis = dict(
    stages=[
        dict(resolution=160, iters=3000, label_sampling=True),
        dict(resolution=640, iters=3000, label_sampling=False,
             reinit_images=True),
    ],
    # official YOLO11 settings: ALS from step 800 to 2800 of 3000
    als=dict(warmup=0.2667, early_exit=0.9333),
    det_loss_weight=1e-3,
    prior_loss=dict(loss_weight=1e-3, first_bn_weight=1.0),
    l2_loss=dict(loss_weight=5e-5),
    # the YOLOv5 default's official-code priors do not apply here
    tv_loss=dict(_delete_=True, type='mmzsq.TotalVariationLoss',
                 loss_weight=0.0),
    lr=1e-2, keep_best=False)
