"""The inference model: the two towers, their projections and the logit scale.

:class:`CLIP` is what a plain CLIP of the same towers has (image encoder, text encoder, two
projections, logit scale); the training model that wraps it is :class:`lightclip.task.LightCLIP`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lightclip.modelconfig import (  # noqa: F401  (re-exported)
    MIN_TOKEN_POSITIONS,
    STAGE_STRIDES,
    ModelConfig,
    check_token_stage,
    stage_positions,
)
from lightclip.models.image import build_image_encoder
from lightclip.models.text import TextEncoder


class CLIP(nn.Module):
    """Inference model: ``encode_image`` / ``encode_text`` and the (capped) logit scale."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.visual = build_image_encoder(config.image_encoder, config.image_size)
        self.image_projection = nn.Linear(self.visual.out_dim, config.embed_dim)
        self.text = TextEncoder(config.text)
        self.text_projection = nn.Linear(config.text.width, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))

    def image_stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.visual(images)

    def image_embedding(self, stages: list[torch.Tensor]) -> torch.Tensor:
        return self.image_projection(stages[-1].mean(dim=(2, 3)))  # (B, D)

    def text_final_states(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text.ln_final(self.text(tokens)[-1])  # (B, L, W)

    def text_embedding(self, tokens: torch.Tensor, final_states: torch.Tensor) -> torch.Tensor:
        return self.text_projection(self.text.pool(tokens, final_states))  # (B, D)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        embedding = self.image_embedding(self.image_stages(images))
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        embedding = self.text_embedding(tokens, self.text_final_states(tokens))
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def scale(self) -> torch.Tensor:
        """exp(logit_scale), capped at ``logit_scale_max``."""
        return self.logit_scale.exp().clamp(max=self.config.logit_scale_max)

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        self.logit_scale.clamp_(max=math.log(self.config.logit_scale_max))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "image_embeds": self.encode_image(images),
            "text_embeds": self.encode_text(tokens),
            "logit_scale": self.scale(),
        }
