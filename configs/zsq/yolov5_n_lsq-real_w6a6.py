# Baseline: LSQ on N real COCO train2017 images with their labels
# (distillation off: beta_kl = beta_feat = 0), YOLOv5-n W6A6.
# $MMZSQ_COCO_TRAIN_ROOT picks the folder (annotations/instances_train2017.json
# + train2017/), e.g. ../shared/data/coco128/.
_base_ = './yolov5_n_w6a6.py'
num_real_images = 2000  # as many as the synthetic set
train_root = '{{$MMZSQ_COCO_TRAIN_ROOT:data/coco/}}'
train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='YOLOv5CocoDataset',
    data_root=train_root,
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    indices=num_real_images,
    filter_cfg=dict(filter_empty_gt=False, min_size=32),
    pipeline=_base_.zsq_train_pipeline))
model = dict(loss_weights=dict(det=1.0, kd=0.0, feat=0.0))
