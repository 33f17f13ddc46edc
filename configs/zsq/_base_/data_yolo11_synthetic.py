# YOLO11 family: train data of Stage II (THE one place to edit it): Stage
# I's synthetic set, synthesised on first use with ./synthesis_yolo11.py (its
# teacher defaults to the algorithm's float model: tools/train.py fills in
# teacher / teacher_checkpoint from model.architecture / init_checkpoint).
# The float model is configs/yolo11/yolo11_s_coco.py (./yolo11_{m,l}.py
# re-size it).
_base_ = ['../../yolo11/yolo11_s_coco.py', './synthesis_yolo11.py']
custom_imports = dict(imports=['mmzsq'], allow_failed_imports=False)

# mmyolo's YOLOv8 close-mosaic pipeline (train_pipeline_stage2: letterbox,
# random affine scale, HSV, flip) without Mosaic and Albu (albumentations
# is not installed); the synthetic images already are 640 x 640.
zsq_train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='YOLOv5KeepRatioResize', scale=(640, 640)),
    dict(type='LetterResize', scale=(640, 640), allow_scale_up=True,
         pad_val=dict(img=114.0)),
    dict(type='YOLOv5RandomAffine', max_rotate_degree=0.0,
         max_shear_degree=0.0, scaling_ratio_range=(0.5, 1.5),
         max_aspect_ratio=100, border_val=(114, 114, 114)),
    dict(type='YOLOv5HSVRandomAug'),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'flip',
                    'flip_direction'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    # (re-stated: the `mmyolo::` base tags it with `_scope_`, which
    # mmengine would pass on to the function)
    collate_fn=dict(_delete_=True, type='yolov5_collate'),
    dataset=dict(
        _delete_=True,
        type='mmzsq.SyntheticDetDataset',
        data_root='work_dirs/zsq_sets/yolo11/',  # per size: ./yolo11_*.py
        ann_file='annotations.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=2),
        pipeline=zsq_train_pipeline,
        synthesis=_base_.synthesis))
# the YOLOv8 base switches to its close-mosaic pipeline at an epoch: no
# epochs here (iteration-based QAT), so no pipeline switch / EMA hooks
custom_hooks = []
