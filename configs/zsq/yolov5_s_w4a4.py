# YOLOv5-s W4A4 zero-shot QAT on the synthetic set.
_base_ = './_base_/yolov5_s.py'
model = dict(quantizer=dict(w_bits=4, a_bits=4))
# low-bit recipe: weights at Adam 1e-4 with a 100-iteration warmup
optim_wrapper = dict(paramwise_cfg=_base_.zsq_low_bit_paramwise_cfg)
param_scheduler = _base_.zsq_warmup_param_scheduler
