"""LightCLIP objectives: pure tensor functions plus the thin weighted-objective module."""

from lightclip.losses.instance import instance_loss, label_mode_at, soft_cross_entropy, soft_targets
from lightclip.losses.matching import batched_matching, reference_matching
from lightclip.losses.mlm import (
    IGNORE_INDEX,
    MaskingConfig,
    mask_global_batch,
    mask_tokens,
    mlm_terms,
)
from lightclip.losses.objective import ForwardInputs, LightCLIPObjective, LossConfig, weighted_total
from lightclip.losses.token import TokenLossConfig, token_cost, token_loss

__all__ = [
    "ForwardInputs",
    "IGNORE_INDEX",
    "LightCLIPObjective",
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
    "token_cost",
    "token_loss",
    "TokenLossConfig",
    "weighted_total",
]
