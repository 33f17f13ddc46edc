# YOLOv5 family: train data of Stage II (THE one place to edit it): Stage
# I's synthetic set, synthesised on first use (train_cfg.synthesis) into the
# dataset's data_root (per size: ./yolov5_*.py).  Any COCO-format set works
# the same way (the *_lsq-real_* configs swap in real COCO images).
_base_ = ['mmyolo::yolov5/yolov5_s-v61_syncbn_fast_8xb16-300e_coco.py',
          './zsq_runtime.py']
custom_imports = dict(imports=['mmzsq'], allow_failed_imports=False)

zsq_train_pipeline = [
    dict(type='mmzsq.CachedLoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='YOLOv5KeepRatioResize', scale=(640, 640)),
    dict(type='LetterResize', scale=(640, 640), allow_scale_up=False,
         pad_val=dict(img=114)),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'flip',
                    'flip_direction', 'scale_factor', 'pad_param'))
]
train_dataloader = dict(
    **_base_.zsq_train_dataloader,
    # (re-stated: the `mmyolo::` base tags it with `_scope_`, which
    # mmengine would pass on to the function)
    collate_fn=dict(_delete_=True, type='yolov5_collate'),
    dataset=dict(_delete_=True, type='YOLOv5CocoDataset', **_base_.zsq_set,
                 data_root='work_dirs/zsq_sets/yolov5/',
                 pipeline=zsq_train_pipeline))
