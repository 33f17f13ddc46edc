# Baseline: LSQ+ (asymmetric activations, learnable offset) on N real COCO
# train2017 images with their labels and masks, distillation off,
# mask-rcnn_swin-t W4A8.
_base_ = './mask-rcnn_swin-t_lsq-real_w4a8.py'
model = dict(quantizer=dict(a_lsq_plus=True))
