# Stage I inversion priors
from .bn_statistics_loss import BNStatisticsLoss
from .image_prior_losses import ImageL2Loss, TotalVariationLoss
from .patch_similarity_entropy_loss import PatchSimilarityEntropyLoss
# Stage II distillation
from .decoded_box_iou_loss import DecodedBoxIoULoss
from .kd_kl import KD_REDUCTIONS, bernoulli_kl, softmax_kl
from .two_stage_kd_loss import TwoStageKDLoss
from .world_size_scaling import undo_world_size_scaling
from .yolo_kd_loss import YOLOKDLoss, YOLOv8KDLoss

__all__ = ['BNStatisticsLoss', 'TotalVariationLoss', 'ImageL2Loss',
           'PatchSimilarityEntropyLoss', 'bernoulli_kl', 'softmax_kl',
           'KD_REDUCTIONS',
           'YOLOKDLoss', 'YOLOv8KDLoss', 'DecodedBoxIoULoss',
           'TwoStageKDLoss', 'undo_world_size_scaling']
