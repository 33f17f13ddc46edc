# Ceiling of the zero-shot method: our Stage II loss (det + KD + feature,
# as in ./yolov5_n_w4a8.py) on N real COCO train2017 images with their labels
# instead of the synthetic set (no Stage I), YOLOv5-n W4A8;
# data: _base_/real_coco_train.py ($MMZSQ_COCO_TRAIN_ROOT).
_base_ = ['./yolov5_n_w4a8.py', './_base_/real_coco_train.py']
train_dataloader = dict(dataset=dict(
    **_base_.real_yolo_dataset, pipeline=_base_.zsq_train_pipeline))
train_cfg = _base_.real_train_cfg
