# Ablation "w/o L_detect" (KD + feature distillation only),
# mask-rcnn_swin-s W4A8.
_base_ = './mask-rcnn_swin-s_w4a8.py'
model = dict(loss_weights=dict(det=0.0))
