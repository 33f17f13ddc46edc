# Ablation "w/o L_detect" (task-agnostic: KD + feature distillation only),
# YOLOv5-n W4A8.
_base_ = './yolov5_n_w4a8.py'
model = dict(loss_weights=dict(det=0.0))
