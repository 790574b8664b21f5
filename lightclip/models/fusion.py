"""Train-only modules: the image-to-text fusion of the fused MLM pass and the MLM head.

Neither is part of the inference model: :meth:`lightclip.task.LightCLIP.inference` drops both.
"""

from __future__ import annotations

import torch
from torch import nn

from lightclip.modelconfig import FusionConfig  # noqa: F401  (re-exported)


class ImageToTextFusion(nn.Module):
    """Maps image stage-k features ``(B, C_k, H, W)`` into text stage-k states ``(B, L, W_t)``."""

    def __init__(self, image_widths: list[int], text_width: int, config: FusionConfig):
        super().__init__()
        bad = [k for k in config.stages if not 1 <= k <= len(image_widths)]
        if bad or not config.stages:
            raise ValueError(f"fusion stages {list(config.stages)} must be within 1..{len(image_widths)}")
        self.stages = tuple(sorted(set(config.stages)))
        self.mode = config.mode
        self.proj = nn.ModuleDict(
            {str(k): nn.Conv2d(image_widths[k - 1], text_width, kernel_size=1) for k in self.stages}
        )
        if self.mode == "cross_attention":
            self.norm = nn.ModuleDict({str(k): nn.LayerNorm(text_width) for k in self.stages})
            self.attn = nn.ModuleDict(
                {str(k): nn.MultiheadAttention(text_width, config.heads, batch_first=True) for k in self.stages}
            )

    def forward(self, stage: int, text_states: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        """Return the fused text states of 1-based ``stage``."""
        patches = self.proj[str(stage)](image_features).flatten(2).transpose(1, 2)  # (B, HW, W_t)
        if self.mode == "pool":
            return text_states + patches.mean(dim=1, keepdim=True)
        query = self.norm[str(stage)](text_states)
        attended, _ = self.attn[str(stage)](query, patches, patches, need_weights=False)
        return text_states + attended


class MLMHead(nn.Module):
    """Linear layer from text width to the vocabulary, applied to the selected positions only."""

    def __init__(self, text_width: int, vocab_size: int):
        super().__init__()
        self.decoder = nn.Linear(text_width, vocab_size)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(states)  # (M, W) -> (M, V)
