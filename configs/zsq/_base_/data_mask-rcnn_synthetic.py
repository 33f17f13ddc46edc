# Mask R-CNN family (R50 and Swin): train data of Stage II (THE one place to
# edit it): Stage I's synthetic set.  Each family config sets its own set
# directory and its Stage I defaults (./synthesis_mask-rcnn_*.py); the
# teacher defaults to the algorithm's float model (tools/train.py).
# Defined as a variable (no upstream base) so both families can include it.
zsq_train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='mmzsq.BoxMasks'),  # boxes-only labels -> box masks
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
zsq_train_dataset = dict(
    _delete_=True,
    type='mmzsq.SyntheticDetDataset',
    data_root='work_dirs/zsq_sets/mask-rcnn/',
    ann_file='annotations.json',
    data_prefix=dict(img='images/'),
    filter_cfg=dict(filter_empty_gt=False, min_size=2),
    pipeline=zsq_train_pipeline)
