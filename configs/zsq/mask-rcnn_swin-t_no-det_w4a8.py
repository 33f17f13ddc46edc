# Ablation "w/o L_detect" (KD + feature distillation only),
# mask-rcnn_swin-t W4A8.
_base_ = './mask-rcnn_swin-t_w4a8.py'
model = dict(loss_weights=dict(det=0.0))
