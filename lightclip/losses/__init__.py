"""LightCLIP loss functions: pure tensor functions (instance, token with its matching solver, MLM
masking and terms, the cross-rank gather); the weighted objective is :mod:`lightclip.task`."""

from lightclip.lossconfig import LossConfig
from lightclip.losses.instance import instance_loss, label_mode_at, soft_cross_entropy, soft_targets
from lightclip.losses.matching import batched_matching, reference_matching
from lightclip.losses.mlm import (
    IGNORE_INDEX,
    MaskingConfig,
    mask_global_batch,
    mask_tokens,
    mlm_terms,
)
from lightclip.losses.token import TokenLossConfig, start_token_matching, token_cost, token_loss

__all__ = [
    "IGNORE_INDEX",
    "LossConfig",
    "MaskingConfig",
    "batched_matching",
    "instance_loss",
    "label_mode_at",
    "mask_global_batch",
    "mask_tokens",
    "mlm_terms",
    "reference_matching",
    "soft_cross_entropy",
    "soft_targets",
    "start_token_matching",
    "token_cost",
    "token_loss",
    "TokenLossConfig",
]
