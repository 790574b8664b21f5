"""CLIP-style text transformer: token + position embeddings, pre-LN blocks grouped in stages.

Bidirectional with a padding mask by default (MLM needs both sides of a masked word);
``causal=True`` gives CLIP's causal attention. The sentence embedding is the final layer-normed
state at the end token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightclip.modelconfig import TextConfig  # noqa: F401  (re-exported)
from pipeline.base.tokenizer import SPECIAL_IDS


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"text width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape  # (B, L, W)
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, L, W/H)
        return self.out(y.transpose(1, 2).reshape(b, n, w))


class Block(nn.Module):
    """Pre-LN transformer block, as in CLIP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))


class TextEncoder(nn.Module):
    """Transformer in ``stages`` groups; callers may run stage ranges (for fusion)."""

    def __init__(self, config: TextConfig):
        super().__init__()
        if config.layers % config.stages:
            raise ValueError(f"text layers {config.layers} do not split into {config.stages} stages")
        self.config = config
        per_stage = config.layers // config.stages
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.width))
        self.stages = nn.ModuleList(
            nn.ModuleList(Block(config.width, config.heads, config.mlp_ratio) for _ in range(per_stage))
            for _ in range(config.stages)
        )
        self.ln_final = nn.LayerNorm(config.width)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.token_embedding.weight, std=self.config.embedding_init_std)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=self.config.width**-0.5)
                nn.init.zeros_(module.bias)

    @property
    def width(self) -> int:
        return self.config.width

    def attention_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """Boolean mask (B, 1, L, L), True where attention is allowed."""
        keep = (tokens != SPECIAL_IDS.pad)[:, None, None, :]  # (B, 1, 1, L)
        if self.config.causal:
            n = tokens.shape[1]
            keep = keep & torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()
        # A query always sees itself, so fully padded rows stay finite.
        eye = torch.eye(tokens.shape[1], dtype=torch.bool, device=tokens.device)
        return keep | eye

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        if n > self.config.context_length:
            raise ValueError(f"{n} tokens exceed the context length {self.config.context_length}")
        return self.token_embedding(tokens) + self.positional_embedding[:n]  # (B, L, W)

    def run_stages(self, x: torch.Tensor, attn_mask: torch.Tensor, start: int, stop: int) -> list[torch.Tensor]:
        """Run stages ``start..stop-1`` (0-based) and return each one's output states."""
        outputs = []
        for stage in self.stages[start:stop]:
            for block in stage:
                x = block(x, attn_mask)
            outputs.append(x)
        return outputs

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Token states after every stage, each (B, L, W) (before the final layer norm)."""
        return self.run_stages(self.embed(tokens), self.attention_mask(tokens), 0, len(self.stages))

    def pool(self, tokens: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """(B, W) sentence states of final ``states`` (B, L, W), as ``config.pooling`` says."""
        if self.config.pooling == "mean":
            keep = (tokens != SPECIAL_IDS.pad).unsqueeze(-1).to(states.dtype)
            return (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        return states[rows, self.end_positions(tokens)]

    def end_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Index of the first end token of each caption (the last position if there is none)."""
        is_end = tokens == SPECIAL_IDS.eos
        last = torch.full_like(tokens[:, 0], tokens.shape[1] - 1)
        return torch.where(is_end.any(dim=1), is_end.int().argmax(dim=1), last)
