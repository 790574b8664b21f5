"""The token term: alignment of matched patches and words within each positive pair (eqs. 10-13)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightclip.lossconfig import LossConfig
from lightclip.losses.token import token_loss
from lightclip.modelconfig import check_token_stage
from lightclip.task.model import LightCLIP
from lightclip.task.term import Term


class TokenTerm(Term):
    """Asks the model for its token features (the matching starts in the forward, off the
    critical path); trains the separate token projections; sets the token scale."""

    name = "token"
    outputs = ("image_tokens", "text_tokens", "text_token_mask")

    @classmethod
    def weight(cls, config: LossConfig) -> float:
        return config.token_weight

    def forward_options(self) -> dict[str, Any]:
        return {"token_features": True}

    def trains(self, model: LightCLIP) -> list[nn.Module]:
        return [m for m in (model.image_token_projection, model.text_token_projection) if m is not None]

    def prepare(self, model: LightCLIP) -> None:
        """Refuse a token stage without several positions; start the token scale at 1/tau,
        learned when ``loss.token.learnable``."""
        check_token_stage(model.config)
        model.token_logit_scale.data.fill_(self.config.token.initial_logit_scale)
        model.token_logit_scale.requires_grad_(self.config.token.learnable)

    def loss(self, outputs: dict[str, Any], progress: float) -> dict[str, torch.Tensor]:
        pending = outputs.get("token_matching")  # started by the model's forward
        value = token_loss(
            outputs["image_tokens"],
            outputs["text_tokens"],
            outputs["text_token_mask"],
            self.config.token,
            scale=outputs.get("token_logit_scale"),
            matched=None if pending is None else pending.result(),
        )
        return {"token": value}
