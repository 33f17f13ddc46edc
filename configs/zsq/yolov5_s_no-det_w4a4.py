# Ablation "w/o L_detect" (task-agnostic: KD + feature distillation only),
# YOLOv5-s W4A4.
_base_ = './yolov5_s_w4a4.py'
model = dict(loss_weights=dict(det=0.0))
