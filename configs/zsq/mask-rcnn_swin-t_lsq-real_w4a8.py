# Baseline: LSQ on N real COCO train2017 images with their labels and masks
# (distillation off), mask-rcnn_swin-t W4A8; data: _base_/real_coco_train.py.
_base_ = ['./mask-rcnn_swin-t_w4a8.py', './_base_/real_coco_train.py']
train_dataloader = dict(dataset=_base_.real_mask_rcnn_dataset)
model, train_cfg = _base_.real_model, _base_.real_train_cfg
