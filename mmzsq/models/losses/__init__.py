from .binary_kl import bernoulli_kl
from .two_stage_kd_loss import TwoStageKDLoss
from .yolo_kd_loss import YOLOKDLoss

__all__ = ['bernoulli_kl', 'YOLOKDLoss', 'TwoStageKDLoss']
