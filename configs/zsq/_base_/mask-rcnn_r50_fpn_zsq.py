# Mask R-CNN R50-FPN (mmdet 1x) zero-shot QAT (paper App. B.3): the runtime of
# ./zsq_runtime.py with loss 0.04*L_detect + 0.2*L_KD + 0.1*L_feat, Adam lr
# 1e-4 (weights and biases 1e-5), tau 4, 4000 iterations; Stage I:
# ./synthesis_mask-rcnn_r50.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
          './data_mask-rcnn_synthetic.py', './synthesis_mask-rcnn_r50.py']
# the float checkpoint carries the backbone: no ImageNet (torchvision://)
# download, which also needs torchvision
float_checkpoint = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth'  # noqa: E501
arch = _base_.model
arch.backbone.init_cfg = None
model = dict(
    _base_.zsq_algorithm,
    architecture=arch,
    init_checkpoint=float_checkpoint,
    loss_weights=dict(det=0.04, kd=0.2, feat=0.1),
    kd_loss=dict(type='mmzsq.TwoStageKDLoss', tau=4.0))
train_dataloader = dict(_base_.zsq_mask_rcnn_dataloader, dataset=dict(
    _base_.zsq_mask_rcnn_set,
    data_root='work_dirs/zsq_sets/mask-rcnn_r50_fpn/'))
data_root = _base_.zsq_data_root  # COCO val2017 or $MMZSQ_COCO_ROOT
val_dataloader = test_dataloader = _base_.zsq_val_dataloader
val_evaluator = test_evaluator = _base_.zsq_mask_rcnn_evaluator

train_cfg = dict(_base_.zsq_mask_rcnn_train_cfg, synthesis=_base_.synthesis)
optim_wrapper = dict(_base_.zsq_optim_wrapper,
                     paramwise_cfg=_base_.zsq_lsq_paramwise_cfg)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        eta_min=1e-4 * 0.01)]
default_hooks = _base_.zsq_mask_rcnn_hooks
log_processor = _base_.zsq_log_processor
