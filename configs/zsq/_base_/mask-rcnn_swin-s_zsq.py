# Mask R-CNN Swin-S zero-shot QAT (paper App. B.3): the Swin-T recipe
# (./mask-rcnn_swin-t_zsq.py) with Swin-S depths and the official Swin-S float
# weights (mmdet mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco).
_base_ = './mask-rcnn_swin-t_zsq.py'
float_checkpoint = 'https://download.openmmlab.com/mmdetection/v2.0/swin/mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco/mask_rcnn_swin-s-p4-w7_fpn_fp16_ms-crop-3x_coco_20210903_104808-b92c91f1.pth'  # noqa
model = dict(
    init_checkpoint=float_checkpoint,
    architecture=dict(backbone=dict(depths=[2, 2, 18, 2])))
train_dataloader = dict(
    dataset=dict(data_root='work_dirs/zsq_sets/mask-rcnn_swin-s/'))
