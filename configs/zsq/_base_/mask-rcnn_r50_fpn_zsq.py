# Mask R-CNN R50-FPN (mmdet 1x) zero-shot QAT (paper App. B.3): LSQ student
# + frozen FP teacher, loss 0.04*L_detect + 0.2*L_KD + 0.1*L_feat, Adam lr
# 1e-4, tau 4.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
          './data_mask-rcnn_synthetic.py', './synthesis_mask-rcnn_r50.py']
float_checkpoint = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_1x_coco/mask_rcnn_r50_fpn_1x_coco_20200205-d4b0c5d6.pth'  # noqa
# the float checkpoint carries the backbone: no ImageNet (torchvision://)
# download, which also needs torchvision
arch = _base_.model
arch.backbone.init_cfg = None
custom_imports = dict(imports=['mmzsq'], allow_failed_imports=False)

zsq_dataset = _base_.zsq_train_dataset
zsq_dataset.data_root = 'work_dirs/zsq_sets/mask-rcnn_r50_fpn/'
zsq_dataset.synthesis = _base_.synthesis
train_dataloader = dict(batch_size=2, num_workers=2, persistent_workers=False,
                        dataset=zsq_dataset)
# val/test: COCO val2017 (or $MMZSQ_COCO_ROOT), CocoMetric bbox + segm
data_root = '{{$MMZSQ_COCO_ROOT:data/coco/}}'
val_dataloader = dict(num_workers=2, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root +
                     'annotations/instances_val2017.json')
test_evaluator = val_evaluator

model = dict(
    _delete_=True,
    type='mmzsq.QuantDistillAlgorithm',
    architecture=arch,
    init_checkpoint=float_checkpoint,
    quantizer=dict(type='mmzsq.EagerLSQQuantizer', w_bits=8, a_bits=8),
    quant_mode='qat',
    loss_weights=dict(det=0.04, kd=0.2, feat=0.1),
    kd_loss=dict(type='mmzsq.TwoStageKDLoss', tau=4.0),
    feat_layers=['backbone', 'neck'],
    freeze_bn_stats=True)

max_iters = 4000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters=max_iters, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=1e-4, weight_decay=0.0),
                     # as YOLOv5: weights 1e-5, LSQ step sizes/offsets 1e-4
                     paramwise_cfg=dict(custom_keys={
                         'fake_quant.': dict(lr_mult=1.0),
                         '.weight': dict(lr_mult=0.1),
                         '.bias': dict(lr_mult=0.1)}),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        T_max=max_iters, eta_min=1e-4 * 0.01)]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000,
                    max_keep_ckpts=2),
    logger=dict(type='LoggerHook', interval=10))
log_processor = dict(by_epoch=False)
load_from = None
