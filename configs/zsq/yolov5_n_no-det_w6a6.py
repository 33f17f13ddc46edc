# Ablation "w/o L_detect" (task-agnostic: KD + feature distillation only),
# YOLOv5-n W6A6.
_base_ = './yolov5_n_w6a6.py'
model = dict(loss_weights=dict(det=0.0))
