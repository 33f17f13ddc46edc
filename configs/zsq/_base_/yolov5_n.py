# YOLOv5-n v6.1 (mmyolo): student and FP teacher start from this checkpoint.
_base_ = './yolov5_zsq.py'
deepen_factor, widen_factor = 0.33, 0.25
float_checkpoint = 'https://download.openmmlab.com/mmyolo/v0/yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco/yolov5_n-v61_syncbn_fast_8xb16-300e_coco_20220919_090739-b804c1ad.pth'  # noqa
model = dict(
    init_checkpoint=float_checkpoint,
    architecture=dict(
        backbone=dict(deepen_factor=deepen_factor, widen_factor=widen_factor),
        neck=dict(deepen_factor=deepen_factor, widen_factor=widen_factor),
        bbox_head=dict(head_module=dict(widen_factor=widen_factor))))

# its own Stage I set (a set made by another teacher is refused)
train_dataloader = dict(
    dataset=dict(data_root='work_dirs/zsq_sets/yolov5_n/'))
