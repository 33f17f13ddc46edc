# Stage I for Mask R-CNN Swin-T/S teachers (paper App. B.2): the R50 one
# (./synthesis_mask-rcnn_r50.py) with {a_det, a_prior, a_TV, a_l2} = {10.0,
# 1.0, 0, 1e-3} and 4000 Adam steps; the LayerNorm backbone has no BN
# statistics, so the prior is PSAQ-ViT's patch-similarity entropy over the
# Swin blocks (the FPN/heads' BNs, if any, are not used).
_base_ = './synthesis_mask-rcnn_r50.py'
synthesis = dict(
    stages=[
        dict(resolution=160, iters=4000, label_sampling=True),
        dict(resolution=(800, 1344), iters=4000, label_sampling=False,
             reinit_images=True),
    ],
    det_loss_weight=10.0,
    prior_loss=dict(_delete_=True, type='mmzsq.PatchSimilarityEntropyLoss',
                    loss_weight=1.0, module_types=('SwinBlock', )),
    l2_loss=dict(loss_weight=1e-3))
