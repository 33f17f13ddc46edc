# Baseline: PTQ only (step sizes calibrated on the synthetic set, weights and
# BN frozen), mask-rcnn_swin-s W4A8.
_base_ = './mask-rcnn_swin-s_w4a8.py'
model = dict(quant_mode='ptq')
max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = []
optim_wrapper = dict(optimizer=dict(lr=1e-5))
