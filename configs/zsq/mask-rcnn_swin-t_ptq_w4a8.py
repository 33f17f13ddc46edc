# Baseline: PTQ only (step sizes calibrated on the synthetic set at a constant
# lr of 1e-5, weights and BN frozen), mask-rcnn_swin-t W4A8.
_base_ = ['./mask-rcnn_swin-t_w4a8.py', './_base_/ptq.py']
model, train_cfg = _base_.ptq_model, _base_.ptq_train_cfg
param_scheduler = []
optim_wrapper = dict(optimizer=dict(lr=1e-5))
