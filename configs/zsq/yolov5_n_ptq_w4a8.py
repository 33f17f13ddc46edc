# Baseline: PTQ only (LSQ step sizes calibrated on the synthetic set, weights
# and BN frozen), YOLOv5-n W4A8.
_base_ = ['./yolov5_n_w4a8.py', './_base_/ptq.py']
model, train_cfg = _base_.ptq_model, _base_.ptq_train_cfg
