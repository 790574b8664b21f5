"""Objective configs (no torch import): read by ``lightclip train --help`` and the start-up
checks before any tensor exists; :mod:`lightclip.losses` re-exports every name."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

LabelMode = Literal["one_hot", "smooth", "importance"]
TokenForm = Literal["infonce", "cost"]
TokenNegatives = Literal["pair", "batch"]


@dataclass
class TokenLossConfig:
    """``form``: ``infonce`` or ``cost``; ``temperature``: tau of the token InfoNCE (its initial
    value when ``learnable``: the model then learns ``1/tau`` like CLIP's logit scale, capped
    at 100); ``symmetric``: add the patch -> word direction over the matched patches;
    ``negatives``: ``pair`` (the other patches of the same image, the paper's reading) or
    ``batch`` (the patches of every image of this rank's batch)."""

    form: TokenForm = "infonce"
    temperature: float = 0.1
    learnable: bool = False
    symmetric: bool = False
    negatives: TokenNegatives = "pair"

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"loss.token.temperature must be > 0, got {self.temperature}")

    @property
    def initial_logit_scale(self) -> float:
        return math.log(1 / self.temperature)


@dataclass
class MaskingConfig:
    """BERT masking: ``select_prob`` of the word tokens; of those, ``mask_prob`` become the mask
    token, ``random_prob`` a random word id, the rest stay unchanged. ``batch_fraction``: the
    share of the batch's rows (a seeded random choice, ``round(fraction * rows)``, at least
    one) that get masked words at all; the MLM passes skip the other rows, so 0.5 roughly
    halves their cost. 1.0 (the paper's setting) masks every row."""

    select_prob: float = 0.15
    mask_prob: float = 0.8
    random_prob: float = 0.1
    batch_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.batch_fraction <= 1.0:
            raise ValueError(f"loss.masking.batch_fraction must be in (0, 1], got {self.batch_fraction}")


@dataclass
class LossConfig:
    """Weights of the three terms ([choice]: which weight goes to which term; a term runs iff its
    weight is > 0, see :mod:`lightclip.task.registry`), the label schedule (r1, r2 as fractions
    of training, smoothing alpha) and the MLM masking.
    ``label_mode`` pins one mode for the whole run (e.g. ``one_hot`` for the CLIP baseline).
    ``importance_temperature`` divides the logits that weigh the negatives of the
    importance-aware labels (1.0: the paper's reading, the same logits; larger values spread
    alpha over more negatives). ``token``: the token term's form (see ``TokenLossConfig``)."""

    instance_weight: float = 0.8
    token_weight: float = 0.1
    mlm_weight: float = 0.1
    r1: float = 0.33
    r2: float = 0.66
    alpha: float = 0.2
    label_mode: LabelMode | None = None
    importance_temperature: float = 1.0
    token: TokenLossConfig = field(default_factory=TokenLossConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
