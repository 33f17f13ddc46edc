# YOLO11 zero-shot QAT (paper, YOLO11 hyper-parameters): the runtime of
# ./zsq_runtime.py with loss 0.01*L_detect + 0.1*L_KD + 1.0*L_feat, one lr
# (Adam 1e-5) for weights, biases and LSQ step sizes, tau 4, 2000
# iterations; Stage I: ./synthesis_yolo11.py.
# L_KD is mmzsq.YOLOv8KDLoss: YOLO11's head has no objectness, so it compares
# the class distributions and the DFL box distributions.
# First conv (backbone.stem.conv) and the final prediction convs
# (bbox_head.head_module.{cls,reg}_preds.{i}.2) stay float: the quantizer's
# skip_first and DEFAULT_SKIP_PATTERNS.
_base_ = ['./data_yolo11_synthetic.py', './synthesis_yolo11.py']

model = dict(
    _base_.zsq_algorithm,
    loss_weights=dict(det=0.01, kd=0.1, feat=1.0),
    kd_loss=dict(type='mmzsq.YOLOv8KDLoss', tau=4.0),
    # student BN frozen by default (bn_mode): no SyncBN, which is GPU-only
    architecture=dict(**_base_.model, use_syncbn=False))
train_cfg = dict(_base_.zsq_train_cfg, synthesis=_base_.synthesis)
optim_wrapper = dict(_base_.zsq_optim_wrapper,
                     optimizer=dict(_base_.zsq_optim_wrapper['optimizer'],
                                    lr=1e-5))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False,
                        eta_min=1e-7)]
default_hooks, log_processor = (_base_.zsq_default_hooks,
                                _base_.zsq_log_processor)
