# Mask R-CNN Swin-T (mmdet 1x) zero-shot QAT (paper App. B.3): the runtime of
# ./zsq_runtime.py as for R50 (./mask-rcnn_r50_fpn_zsq.py: 4000 iterations,
# batches of 2) with loss 1.0*L_detect + 1.0*L_KD + 1.0*L_feat and one Adam
# lr (1e-6); Stage I: ./synthesis_mask-rcnn_swin.py.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
          './data_mask-rcnn_synthetic.py', './synthesis_mask-rcnn_swin.py']
float_checkpoint = 'https://download.openmmlab.com/mmdetection/v2.0/swin/mask_rcnn_swin-t-p4-w7_fpn_1x_coco/mask_rcnn_swin-t-p4-w7_fpn_1x_coco_20210902_120937-9d6b7cfa.pth'  # noqa: E501
# the float checkpoint carries the backbone: no ImageNet download
arch = _base_.model
arch.backbone.init_cfg = None
model = dict(_base_.zsq_algorithm, architecture=arch,
             init_checkpoint=float_checkpoint,
             loss_weights=dict(det=1.0, kd=1.0, feat=1.0),
             kd_loss=dict(type='mmzsq.TwoStageKDLoss', tau=4.0))
optim_wrapper = dict(_base_.zsq_optim_wrapper,
                     optimizer=dict(_base_.zsq_optim_wrapper['optimizer'],
                                    lr=1e-6))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        eta_min=1e-6 * 0.01)]

train_cfg = dict(_base_.zsq_mask_rcnn_train_cfg, synthesis=_base_.synthesis)
default_hooks, log_processor = (_base_.zsq_mask_rcnn_hooks,
                                _base_.zsq_log_processor)
data_root = _base_.zsq_data_root  # COCO val2017 or $MMZSQ_COCO_ROOT
val_evaluator = test_evaluator = _base_.zsq_mask_rcnn_evaluator
val_dataloader = test_dataloader = _base_.zsq_val_dataloader
train_dataloader = dict(_base_.zsq_mask_rcnn_dataloader, dataset=dict(
    _base_.zsq_mask_rcnn_set,
    data_root='work_dirs/zsq_sets/mask-rcnn_swin-t/'))
