"""Self-supervised objectives, one per module, plus the EMA, schedules, augmentations and collapse metrics they
share. Pure torch: losses take tensors, never the encoder. See each module for the paper it follows."""

from perception.losses.augment import (PhotometricAugment, add_gaussian_noise, adjust_brightness, adjust_contrast,
                                       adjust_gamma, apply_occlusion, gaussian_blur, random_block_mask)
from perception.losses.dino_head import DINOHead
from perception.losses.distillation import DINOLoss, iBOTPatchLoss
from perception.losses.ema import create_teacher, update_momentum
from perception.losses.metrics import effective_rank, feature_std, flatten_dense
from perception.losses.objective import SSLObjective
from perception.losses.patch_contrast import PatchInfoNCELoss
from perception.losses.predictive import FutureLatentLoss, LatentPredictor
from perception.losses.regularizers import KoLeoLoss, VarianceCovarianceLoss, covariance_term, variance_term
from perception.losses.schedules import (cosine_schedule, linear_warmup, momentum_schedule, teacher_temperature,
                                         warmup_cosine_schedule)
from perception.losses.temporal import ContrastiveRandomWalkLoss

__all__ = [
    "ContrastiveRandomWalkLoss", "DINOHead", "DINOLoss", "FutureLatentLoss", "KoLeoLoss", "LatentPredictor",
    "PatchInfoNCELoss", "PhotometricAugment", "SSLObjective", "VarianceCovarianceLoss", "add_gaussian_noise",
    "adjust_brightness", "adjust_contrast", "adjust_gamma", "apply_occlusion", "cosine_schedule", "covariance_term",
    "create_teacher", "effective_rank", "feature_std", "flatten_dense", "gaussian_blur", "iBOTPatchLoss",
    "linear_warmup", "momentum_schedule", "random_block_mask", "teacher_temperature", "update_momentum",
    "variance_term", "warmup_cosine_schedule",
]
