# Baseline method "real data" (LSQ on N COCO train2017 images with their
# labels, distillation off, no Stage I).  $MMZSQ_COCO_TRAIN_ROOT picks the
# folder (annotations/instances_train2017.json + train2017/), e.g.
# ../shared/data/coco128/.  Variables only: a leaf config combines them with
# its method config (see configs/zsq/*_lsq-real_*.py):
#   model, train_cfg = _base_.real_model, _base_.real_train_cfg
num_real_images = 2000  # as many as the synthetic set
real_coco_train = dict(
    data_root='{{$MMZSQ_COCO_TRAIN_ROOT:data/coco/}}',
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    indices=num_real_images)
# (YOLO: with the family's pipeline, zsq_train_pipeline)
real_yolo_dataset = dict(
    _delete_=True,
    type='YOLOv5CocoDataset',
    filter_cfg=dict(filter_empty_gt=False, min_size=32),
    **real_coco_train)
real_mask_rcnn_dataset = dict(
    _delete_=True,
    type='CocoDataset',
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(1333, 800), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs')],
    **real_coco_train)
real_model = dict(loss_weights=dict(det=1.0, kd=0.0, feat=0.0, iou=0.0),
                  iou_loss=None)  # (the YOLOv5 W4A8 configs' IoU term off)
real_train_cfg = dict(synthesis=None)
