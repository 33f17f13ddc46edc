# YOLOv5-l v6.1 (mmyolo): student and FP teacher start from the official
# checkpoint; its own Stage I set (a set made by another teacher is refused).
_base_ = './yolov5_zsq.py'
deepen_factor, widen_factor = _base_.yolov5_factors.l
model = dict(architecture=_base_.yolov5_archs.l, init_checkpoint='https://download.openmmlab.com/mmyolo/v0/yolov5/yolov5_l-v61_syncbn_fast_8xb16-300e_coco/yolov5_l-v61_syncbn_fast_8xb16-300e_coco_20220917_031007-096ef0eb.pth')  # noqa: E501
train_dataloader = dict(dataset=dict(data_root='work_dirs/zsq_sets/yolov5_l/'))
