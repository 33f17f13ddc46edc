# Ablation "w/o L_detect" (task-agnostic: KD + feature distillation only),
# YOLOv5-s W8A8.
_base_ = './yolov5_s_w8a8.py'
model = dict(loss_weights=dict(det=0.0))
