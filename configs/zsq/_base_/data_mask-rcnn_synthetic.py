# Mask R-CNN family (R50 and Swin): what its configs share over the runtime
# (./zsq_runtime.py), THE one place to edit it: the train data of Stage II,
# Stage I's synthetic set, synthesised on first use (train_cfg.synthesis)
# into the dataset's data_root (each family config sets its own), in batches
# of 2; 4000 iterations, validation and checkpoints every 1000; val/test on
# COCO val2017 (or $MMZSQ_COCO_ROOT), CocoMetric bbox + segm.
# Variables only (no upstream base) so both families can include it next to
# their upstream config.
_base_ = './zsq_runtime.py'
custom_imports = dict(imports=['mmzsq'], allow_failed_imports=False)

zsq_train_pipeline = [
    dict(type='mmzsq.CachedLoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='mmzsq.BoxMasks'),  # boxes-only labels -> box masks
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
zsq_mask_rcnn_dataloader = dict(_base_.zsq_train_dataloader, batch_size=2)
zsq_mask_rcnn_set = dict(_delete_=True, type='CocoDataset', **_base_.zsq_set,
                         pipeline=zsq_train_pipeline)
zsq_mask_rcnn_train_cfg = dict(_base_.zsq_train_cfg, max_iters=4000,
                               val_interval=1000)
zsq_mask_rcnn_evaluator = dict(
    ann_file=_base_.zsq_data_root + 'annotations/instances_val2017.json')
zsq_mask_rcnn_hooks = dict(_base_.zsq_default_hooks, checkpoint=dict(
    _base_.zsq_default_hooks.checkpoint, interval=1000))
