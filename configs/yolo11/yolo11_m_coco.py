# Float YOLO11-m (Ultralytics 8.3+) in mmyolo: YOLOv8-m with mmzsq's YOLO11
# backbone / neck / head module (see yolo11_s_coco.py); loss, assigner, data
# pipeline, schedule and test_cfg are YOLOv8-m's.
# Official weights (not downloadable here):
#   https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11m.pt
_base_ = 'mmyolo::yolov8/yolov8_m_syncbn_fast_8xb16-500e_coco.py'
custom_imports = dict(imports=['mmzsq'], allow_failed_imports=False)

# Ultralytics scale 'm': [depth, width, max_channels] = [0.50, 1.00, 512]
deepen_factor = 0.5
widen_factor = 1.0
last_stage_out_channels = 512
c3k_everywhere = True  # m/l/x: every C3k2 uses C3k blocks

model = dict(
    backbone=dict(
        type='mmzsq.YOLO11CSPDarknet',
        last_stage_out_channels=last_stage_out_channels,
        c3k_everywhere=c3k_everywhere,
        deepen_factor=deepen_factor,
        widen_factor=widen_factor),
    neck=dict(
        type='mmzsq.YOLO11PAFPN',
        num_csp_blocks=2,
        c3k_everywhere=c3k_everywhere,
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        # backbone P3 is 512 wide in YOLO11 (256 in YOLOv8)
        in_channels=[512, 512, last_stage_out_channels],
        out_channels=[256, 512, last_stage_out_channels]),
    bbox_head=dict(
        head_module=dict(
            type='mmzsq.YOLO11HeadModule',
            widen_factor=widen_factor,
            in_channels=[256, 512, last_stage_out_channels])))

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
