# Baseline method "PTQ only": LSQ step sizes calibrated on the synthetic set
# for 200 iterations, weights and BN frozen (quant_mode='ptq'); the cosine
# schedule ends with train_cfg.max_iters.  Variables only (a PTQ config also
# `_base_`s its QAT config):
#   model, train_cfg = _base_.ptq_model, _base_.ptq_train_cfg
ptq_model = dict(quant_mode='ptq')
ptq_train_cfg = dict(max_iters=200, val_interval=200)
