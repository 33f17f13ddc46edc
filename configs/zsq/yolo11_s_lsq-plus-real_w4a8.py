# Baseline: LSQ+ (asymmetric activations, learnable offset) on N real COCO
# train2017 images with their labels, distillation off, YOLO11-s W4A8.
_base_ = './yolo11_s_lsq-real_w4a8.py'
model = dict(quantizer=dict(a_lsq_plus=True))
