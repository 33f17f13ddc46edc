# Float YOLO11-s (Ultralytics 8.3+) in mmyolo: YOLOv8-s with mmzsq's YOLO11
# backbone / neck / head module; loss, assigner, data pipeline, schedule and
# test_cfg are YOLOv8-s's (the training recipe is not tuned for YOLO11).
# Weights: convert an Ultralytics yolo11s.pt with
#   python tools/model_converters/yolo11_to_mmyolo.py yolo11s.pt yolo11s.pth
# Official weights (not downloadable here):
#   https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11s.pt
_base_ = ['mmyolo::yolov8/yolov8_s_syncbn_fast_8xb16-500e_coco.py',
          './_base_/yolo11_scales.py']
custom_imports = dict(imports=['mmzsq'], allow_failed_imports=False)

# Ultralytics scale 's': [depth, width, max_channels] = [0.50, 0.50, 1024]
(deepen_factor, widen_factor, last_stage_out_channels,
 c3k_everywhere) = _base_.yolo11_scales.s
model = dict(
    backbone=dict(type='mmzsq.YOLO11CSPDarknet',
                  **_base_.yolo11_archs.s.backbone),
    neck=dict(type='mmzsq.YOLO11PAFPN', num_csp_blocks=2,
              **_base_.yolo11_archs.s.neck),
    bbox_head=dict(head_module=dict(
        type='mmzsq.YOLO11HeadModule',
        **_base_.yolo11_archs.s.bbox_head.head_module)))

# COCO-format val folder: data/coco/, or $MMZSQ_COCO_ROOT, e.g.
#   MMZSQ_COCO_ROOT=../shared/data/coco_tiny_val2017/ python tools/test.py ..
data_root = '{{$MMZSQ_COCO_ROOT:data/coco/}}'
val_dataloader = dict(
    num_workers=2, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + _base_.val_ann_file)
test_evaluator = val_evaluator

# albumentations is not an mmzsq dependency: mmyolo's optional Albu step is
# left out of the training pipelines (the rest is YOLOv8's)
train_pipeline = [t for t in _base_.train_pipeline if t.type != 'mmdet.Albu']
train_pipeline_stage2 = [
    t for t in _base_.train_pipeline_stage2 if t.type != 'mmdet.Albu']
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
custom_hooks = [
    dict(h, switch_pipeline=train_pipeline_stage2)
    if h.type == 'mmdet.PipelineSwitchHook' else h
    for h in _base_.custom_hooks]
