# YOLOv5-s v6.1 (mmyolo): student and FP teacher start from the official
# checkpoint; its own Stage I set (a set made by another teacher is refused).
_base_ = './yolov5_zsq.py'
deepen_factor, widen_factor = _base_.yolov5_factors.s
model = dict(architecture=_base_.yolov5_archs.s, init_checkpoint='https://download.openmmlab.com/mmyolo/v0/yolov5/yolov5_s-v61_syncbn_fast_8xb16-300e_coco/yolov5_s-v61_syncbn_fast_8xb16-300e_coco_20220918_084700-86e02187.pth')  # noqa: E501
train_dataloader = dict(dataset=dict(data_root='work_dirs/zsq_sets/yolov5_s/'))
