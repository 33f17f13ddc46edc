# YOLOv5-n W4A8 zero-shot QAT on the synthetic set.
_base_ = './_base_/yolov5_n.py'
model = dict(quantizer=dict(w_bits=4, a_bits=8),
             # the IoU term (_base_/yolov5_zsq.py): +1.9 mAP at W4A8
             loss_weights=dict(iou=1.0),
             iou_loss=_base_.zsq_w4a8_iou_loss)
# low-bit recipe: weights at Adam 1e-4 with a 100-iteration warmup
optim_wrapper = dict(paramwise_cfg=_base_.zsq_low_bit_paramwise_cfg)
param_scheduler = _base_.zsq_warmup_param_scheduler
