# Baseline: PTQ only (LSQ step sizes calibrated on the synthetic set, weights
# and BN frozen), YOLO11-s W4A8.
_base_ = './yolo11_s_w4a8.py'
model = dict(quant_mode='ptq')
max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        T_max=max_iters, eta_min=1e-7)]
