"""Model shape configs (no torch import): read by ``lightclip train --help`` and the start-up
checks before any model is built; :mod:`lightclip.models` re-exports every name."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from pipeline.base.configs import ConfigError
from pipeline.base.tokenizer import SPECIAL_IDS

IMAGE_ENCODER_NAMES = ("resnet18", "mobilenet_v2", "swin_nano")  # lightclip.models.IMAGE_ENCODERS' keys
MIN_TOKEN_POSITIONS = 4
# Every registered encoder's stage strides (timm's feature_info reductions; a test holds them equal),
# kept here so that the start-up checks need neither torch nor timm.
STAGE_STRIDES = (4, 8, 16, 32)


def retired_id(key: str, value: int | None, tokenizer_id: int) -> None:
    """A special-token id a config may still name (older recipes and checkpoints hold them):
    None or the tokenizer's own id; any other value is refused (the model reads the tokenizer's)."""
    if value is not None and value != tokenizer_id:
        raise ConfigError(
            f"{key}={value}: special-token ids come from the tokenizer ({tokenizer_id} here); remove the key"
        )


@dataclass
class TextConfig:
    """Text tower shape; ``layers`` must split evenly into ``stages``. ``pooling``: the sentence
    state is the end token's (``eos``, CLIP) or the mean over the caption's tokens (``mean``:
    start, words and end, never padding). ``embedding_init_std``: the token embedding's std at
    initialisation (CLIP's 0.02; at 1.0, PyTorch's default, each word's embedding outweighs
    what the blocks add at first, so a mean-pooled sentence starts as a bag of its words).
    ``pad_id``/``eos_id``: retired (see :func:`retired_id`)."""

    vocab_size: int = 32000
    context_length: int = 77
    width: int = 512
    heads: int = 8
    layers: int = 8
    stages: int = 4
    mlp_ratio: float = 4.0
    causal: bool = False
    pooling: Literal["eos", "mean"] = "eos"
    embedding_init_std: float = 0.02
    pad_id: int | None = None  # retired: the tokenizer's [PAD] id is used
    eos_id: int | None = None  # retired: the tokenizer's [EOS] id is used

    def __post_init__(self) -> None:
        retired_id("model.text.pad_id", self.pad_id, SPECIAL_IDS.pad)
        retired_id("model.text.eos_id", self.eos_id, SPECIAL_IDS.eos)
        self.pad_id = self.eos_id = None


@dataclass
class FusionConfig:
    """Which stages inject image features into the masked text, and how.

    ``pool`` (default): 1x1 conv to the text width, mean over space, added to every token.
    ``cross_attention``: the tokens attend over the projected patches (residual).
    """

    stages: tuple[int, ...] = (2, 3)
    mode: Literal["pool", "cross_attention"] = "pool"
    heads: int = 8


@dataclass
class ModelConfig:
    """Model shape. ``token_projection``: ``shared`` reuses the global projections for the tokens
    of the token-level objective (no extra parameters; stage 4 only); ``separate`` adds
    train-only ones. ``token_stage``: the image stage (1-4) whose positions are the image
    tokens; it must have at least ``MIN_TOKEN_POSITIONS`` positions at ``image_size``.
    ``mask_id``/``sos_id``: retired (see :func:`retired_id`)."""

    image_encoder: str = "swin_nano"
    image_size: int = 224
    embed_dim: int = 512
    text: TextConfig = field(default_factory=TextConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    token_projection: Literal["shared", "separate"] = "shared"
    logit_scale_init: float = math.log(1 / 0.07)
    logit_scale_max: float = 100.0
    mask_id: int | None = None  # retired: the tokenizer's [MASK] id is used
    sos_id: int | None = None  # retired: the tokenizer's [SOS] id is used
    match_start_end_tokens: bool = False  # [choice] start/end tokens join the token matching
    token_stage: int = 4

    def __post_init__(self) -> None:
        retired_id("model.mask_id", self.mask_id, SPECIAL_IDS.mask)
        retired_id("model.sos_id", self.sos_id, SPECIAL_IDS.sos)
        self.mask_id = self.sos_id = None


def stage_positions(image_size: int, stage: int) -> int:
    """Spatial positions of 1-based image ``stage`` at ``image_size`` (strides 4/8/16/32)."""
    side = -(-image_size // STAGE_STRIDES[stage - 1])
    return side * side


def check_token_stage(config: ModelConfig) -> None:
    """Refuse a token stage without several positions (the term would degenerate)."""
    stage, size = config.token_stage, config.image_size
    if stage not in (1, 2, 3, 4):
        raise ConfigError(f"model.token_stage must be 1, 2, 3 or 4, got {stage}")
    if stage != 4 and config.token_projection == "shared":
        raise ConfigError(
            f"model.token_stage={stage} needs model.token_projection=separate (the shared projection reads stage 4)"
        )
    if stage_positions(size, stage) < MIN_TOKEN_POSITIONS:
        sizes = STAGE_STRIDES[stage - 1] * 2
        earlier = [k for k in range(stage - 1, 0, -1) if stage_positions(size, k) >= MIN_TOKEN_POSITIONS]
        hint = f"model.token_stage={earlier[0]} with token_projection=separate, or " if earlier else ""
        raise ConfigError(
            f"model.token_stage={stage} has {stage_positions(size, stage)} position(s) at image_size {size}; "
            f"the token objective needs >= {MIN_TOKEN_POSITIONS}: use {hint}model.image_size >= {sizes}"
        )
