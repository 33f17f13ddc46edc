# Stage I only: a task-specific calibration set from the float YOLOv5n
#   python tools/synthesize.py configs/synthesis/yolov5_n-v61_coco.py
# The model is the plain float detector: the loop loads
# synthesis.teacher_checkpoint into it and synthesises the set into the
# dataset's data_root (Stage II configs do the same with their teacher).
_base_ = ['../yolov5/yolov5_n-v61_fp_coco.py', '../zsq/_base_/synthesis.py']

train_cfg = dict(
    _delete_=True, type='mmzsq.ZSQTrainLoop', max_iters=1,
    synthesis=dict(
        **_base_.synthesis,
        teacher_checkpoint='{{$MMZSQ_YOLOV5N_MMYOLO:work_dirs/weights/yolov5n_mmyolo.pth}}'))  # noqa: E501
train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='YOLOv5CocoDataset',
    data_root='work_dirs/zsq_sets/yolov5n_coco_als/',
    ann_file='annotations.json',
    data_prefix=dict(img='images/'),
    filter_cfg=dict(filter_empty_gt=False, min_size=2),
    pipeline=_base_.train_pipeline))
randomness = dict(seed=0)
