# Baseline: LSQ+ (asymmetric activations, learnable offset) on N real COCO
# train2017 images with their labels, distillation off, YOLOv5-n W4A8.
_base_ = './yolov5_n_lsq-real_w4a8.py'
model = dict(quantizer=dict(a_lsq_plus=True))
