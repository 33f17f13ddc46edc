# Ablation "w/o L_detect" (task-agnostic: KD + feature distillation only),
# YOLO11-s W4A8.
_base_ = './yolo11_s_w4a8.py'
model = dict(loss_weights=dict(det=0.0))
