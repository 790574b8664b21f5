"""The two towers, their projections and the LightCLIP training model.

:class:`CLIP` is the inference model (what a plain CLIP of the same towers has: image encoder,
text encoder, two projections, logit scale). :class:`LightCLIP` wraps it with the train-only
parts: fusion module, MLM head and, when ``token_projection="separate"``, token projections.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from lightclip.losses.matching import PendingMatching, start_matching
from lightclip.losses.token import token_cost
from lightclip.modelconfig import (  # noqa: F401
    MIN_TOKEN_POSITIONS,
    STAGE_STRIDES,
    ModelConfig,
    check_token_stage,
    stage_positions,
)
from lightclip.models.fusion import ImageToTextFusion, MLMHead
from lightclip.models.image import build_image_encoder
from lightclip.models.text import TextEncoder


def start_token_matching(image_tokens: torch.Tensor, text_tokens: torch.Tensor, mask: torch.Tensor) -> PendingMatching:
    """Start the token assignment off the critical path (non-finite costs read as the maximum)."""
    with torch.no_grad():
        cost = token_cost(image_tokens.detach().float(), text_tokens.detach().float()).nan_to_num(2.0, 2.0, 2.0)
    return start_matching(cost, mask)


def trim_padding(
    tokens: torch.Tensor, *aligned: torch.Tensor | None, pad_id: int = 0
) -> tuple[torch.Tensor | None, ...]:
    """Cut the columns that are padding in every caption of the batch (and the same columns
    of ``aligned`` tensors). Exact: padded keys are masked out and positions are absolute."""
    used = (tokens != pad_id).any(dim=0).nonzero()
    length = int(used.max()) + 1 if used.numel() else 1
    return (tokens[:, :length], *(t if t is None else t[:, :length] for t in aligned))


MLM_ROW_BUCKETS = 8


def mlm_rows(has_masked_word: torch.Tensor, buckets: int = MLM_ROW_BUCKETS) -> torch.Tensor | None:
    """Sorted indices of the rows the MLM passes run on (None: all of them): every row with a
    masked word, topped up with rows without one to a multiple of ``ceil(rows / buckets)``.
    The passes then see at most ``buckets`` batch sizes rather than a new one most steps, which
    kernels that plan per shape (cuDNN attention on a GPU) would pay for each time."""
    rows = has_masked_word.shape[0]
    count = int(has_masked_word.sum())
    step = -(-rows // buckets)
    target = min(rows, -(-count // step) * step)
    if count == 0 or target == rows:
        return None
    first = torch.argsort((~has_masked_word).to(torch.uint8), stable=True)  # masked rows first, in order
    return first[:target].sort().values


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


class LightCLIP(nn.Module):
    """Training model. ``forward`` returns a dict of named tensors (see :meth:`forward`)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.clip = CLIP(config)
        self.fusion = ImageToTextFusion(self.clip.visual.widths, config.text.width, config.fusion)
        self.mlm_head = MLMHead(config.text.width, config.text.vocab_size)
        if config.token_projection == "separate":
            width = self.clip.visual.widths[config.token_stage - 1]
            self.image_token_projection = nn.Linear(width, config.embed_dim)
            self.text_token_projection = nn.Linear(config.text.width, config.embed_dim, bias=False)
        else:
            self.image_token_projection = self.text_token_projection = None
        # 1/temperature of the token InfoNCE when it is learned (train-only, like the fusion).
        self.token_logit_scale = nn.Parameter(torch.tensor(math.log(10.0)), requires_grad=False)

    @property
    def special_ids(self) -> tuple[int, ...]:
        text = self.config.text
        return (text.pad_id, self.config.mask_id, self.config.sos_id, text.eos_id)

    def inference(self) -> CLIP:
        """A copy of the inference model (no fusion, MLM or token-projection parameters)."""
        return copy.deepcopy(self.clip).eval()

    def word_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) True at the tokens the token-level objective may match: never padding or
        mask tokens; start/end tokens only with ``match_start_end_tokens``."""
        excluded = (self.config.text.pad_id, self.config.mask_id)
        if not self.config.match_start_end_tokens:
            excluded = self.special_ids
        return ~torch.isin(tokens, torch.tensor(excluded, device=tokens.device))

    def _token_features(self, stage: torch.Tensor, text_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image_proj = self.image_token_projection or self.clip.image_projection
        text_proj = self.text_token_projection or self.clip.text_projection
        image_tokens = image_proj(stage.flatten(2).transpose(1, 2))  # (B, P, D)
        text_tokens = text_proj(text_states)  # (B, L, D)
        return F.normalize(image_tokens, dim=-1), F.normalize(text_tokens, dim=-1)

    def _mlm_logits(
        self, image_stages: list[torch.Tensor], mlm_tokens: torch.Tensor, mlm_labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Text-only and fused MLM passes over the rows with a masked word (the others add
        nothing; :func:`mlm_rows` keeps a few to hold the batch size steady). After the first
        fusion stage both passes run as one batched forward of 2B rows (fewer, larger kernels;
        the same numbers as two separate passes)."""
        text = self.clip.text
        keep = mlm_rows((mlm_labels != -100).any(dim=1))
        if keep is not None:
            image_stages = [s[keep] for s in image_stages]
            mlm_tokens, mlm_labels = mlm_tokens[keep], mlm_labels[keep]
        selected = mlm_labels != -100  # (B, L)
        mask = text.attention_mask(mlm_tokens)
        fuse_at = self.fusion.stages
        shared = text.run_stages(text.embed(mlm_tokens), mask, 0, fuse_at[0])[-1]
        both = torch.cat([shared, self.fusion(fuse_at[0], shared, image_stages[fuse_at[0] - 1])])  # (2B, L, W)
        both_mask = torch.cat([mask, mask])
        for stage in range(fuse_at[0], len(text.stages)):  # 0-based: its output is 1-based stage + 1
            both = text.run_stages(both, both_mask, stage, stage + 1)[-1]
            if stage + 1 in fuse_at:
                text_only, fused = both.tensor_split(2)
                both = torch.cat([text_only, self.fusion(stage + 1, fused, image_stages[stage])])
        logits_text, logits_fused = self.mlm_head(text.ln_final(both)[torch.cat([selected, selected])]).tensor_split(2)
        return {
            "mlm_logits_text": logits_text,  # (M, V)
            "mlm_logits_fused": logits_fused,  # (M, V)
            "mlm_targets": mlm_labels[selected],  # (M,)
        }

    def forward(
        self,
        images: torch.Tensor,
        tokens: torch.Tensor,
        mlm_tokens: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        token_features: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Named outputs: ``image_embeds``/``text_embeds`` (B, D) normalised, ``logit_scale``;
        with ``token_features``: ``image_tokens`` (B, P, D), ``text_tokens`` (B, L, D),
        ``text_token_mask`` (B, L) and ``token_matching`` (their assignment, being solved on a
        CPU thread while the rest of the forward runs: a ``PendingMatching``); with ``mlm_tokens``/``mlm_labels``: MLM logits at the
        selected positions (M, V) for the text-only and fused passes, and their targets (M,).
        Columns that are padding in the whole batch are trimmed first (L <= context length)."""
        clip = self.clip
        tokens, mlm_tokens, mlm_labels = trim_padding(tokens, mlm_tokens, mlm_labels, pad_id=self.config.text.pad_id)
        stages = clip.image_stages(images)
        final_states = clip.text_final_states(tokens)
        out = {
            "image_embeds": F.normalize(clip.image_embedding(stages), dim=-1),
            "text_embeds": F.normalize(clip.text_embedding(tokens, final_states), dim=-1),
            "logit_scale": clip.scale(),
        }
        if token_features:
            stage = stages[self.config.token_stage - 1]
            out["image_tokens"], out["text_tokens"] = self._token_features(stage, final_states)
            out["text_token_mask"] = self.word_mask(tokens)
            out["token_matching"] = start_token_matching(
                out["image_tokens"], out["text_tokens"], out["text_token_mask"]
            )
            if self.token_logit_scale.requires_grad:
                out["token_logit_scale"] = self.token_logit_scale.exp().clamp(max=self.config.logit_scale_max)
        if mlm_tokens is not None:
            if mlm_labels is None:
                raise ValueError("mlm_tokens needs mlm_labels (-100 where not selected)")
            out.update(self._mlm_logits(stages, mlm_tokens, mlm_labels))
        return out
