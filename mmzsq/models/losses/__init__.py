from .bn_statistics_loss import BNStatisticsLoss
from .image_prior_losses import ImageL2Loss, TotalVariationLoss
from .patch_similarity_entropy_loss import PatchSimilarityEntropyLoss

__all__ = ['BNStatisticsLoss', 'TotalVariationLoss', 'ImageL2Loss',
           'PatchSimilarityEntropyLoss']
