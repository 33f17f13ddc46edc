# Baseline: LSQ on N real COCO train2017 images with their labels and masks
# (distillation off), mask-rcnn_swin-t W4A8.  $MMZSQ_COCO_TRAIN_ROOT picks the folder.
_base_ = './mask-rcnn_swin-t_w4a8.py'
num_real_images = 2000  # as many as the synthetic set
train_root = '{{$MMZSQ_COCO_TRAIN_ROOT:data/coco/}}'
train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='CocoDataset',
    data_root=train_root,
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    indices=num_real_images,
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(1333, 800), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs')]))
model = dict(loss_weights=dict(det=1.0, kd=0.0, feat=0.0))
