# Float YOLOv5n v6.1 (mmyolo) on one CPU/GPU process: the teacher of every
# configs/zsq/yolov5_n_* config.  Weights: convert the Ultralytics yolov5n.pt
# with tools/model_converters/yolov5_to_mmyolo.py.
_base_ = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
custom_imports = dict(imports=['mmzsq'], allow_failed_imports=False)

# COCO-format val folder: data/coco/, or $MMZSQ_COCO_ROOT, e.g.
#   MMZSQ_COCO_ROOT=../shared/data/coco_tiny_val2017/ python tools/test.py ..
data_root = '{{$MMZSQ_COCO_ROOT:data/coco/}}'

val_dataloader = dict(
    num_workers=2,
    persistent_workers=False,
    dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + _base_.val_ann_file)
test_evaluator = val_evaluator

# albumentations is not an mmzsq dependency: mmyolo's optional Albu step is
# left out of the training pipeline (the rest is YOLOv5's)
train_pipeline = [t for t in _base_.train_pipeline if t.type != 'mmdet.Albu']
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
