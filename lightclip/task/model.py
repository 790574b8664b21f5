"""The LightCLIP training model: :class:`CLIP` plus the train-only parts (fusion module, MLM head,
token projections, the token logit scale). Its forward computes what it is asked for: the
objective's active terms say what (see :mod:`lightclip.task.objective`)."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from lightclip.losses.token import start_token_matching
from lightclip.modelconfig import ModelConfig
from lightclip.models import CLIP, ImageToTextFusion, MLMHead
from pipeline.base.tokenizer import SPECIAL_IDS


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

    def inference(self) -> CLIP:
        """A copy of the inference model (no fusion, MLM or token-projection parameters)."""
        return copy.deepcopy(self.clip).eval()

    def train_only(self) -> list[nn.Module]:
        """The modules outside the inference model; the objective freezes those no active term trains."""
        modules = [self.fusion, self.mlm_head, self.image_token_projection, self.text_token_projection]
        return [module for module in modules if module is not None]

    def word_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) True at the tokens the token-level objective may match: never padding or
        mask tokens; start/end tokens only with ``match_start_end_tokens``."""
        excluded = SPECIAL_IDS.all if not self.config.match_start_end_tokens else (SPECIAL_IDS.pad, SPECIAL_IDS.mask)
        mask = tokens != excluded[0]
        for token_id in excluded[1:]:  # comparisons with Python ints: no copy to the device
            mask &= tokens != token_id
        return mask

    def _token_outputs(
        self, stages: list[torch.Tensor], text_states: torch.Tensor, tokens: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Normalised image tokens (B, P, D) of the token stage and text tokens (B, L, D), the
        words that may match, their assignment (started here, collected by the loss) and the
        learned token scale when it is learned."""
        image_proj = self.image_token_projection or self.clip.image_projection
        text_proj = self.text_token_projection or self.clip.text_projection
        stage = stages[self.config.token_stage - 1]
        out = {
            "image_tokens": F.normalize(image_proj(stage.flatten(2).transpose(1, 2)), dim=-1),  # (B, P, D)
            "text_tokens": F.normalize(text_proj(text_states), dim=-1),  # (B, L, D)
            "text_token_mask": self.word_mask(tokens),  # (B, L)
        }
        out["token_matching"] = start_token_matching(out["image_tokens"], out["text_tokens"], out["text_token_mask"])
        if self.token_logit_scale.requires_grad:
            out["token_logit_scale"] = self.token_logit_scale.exp().clamp(max=self.config.logit_scale_max)
        return out

    def _mlm_logits(
        self,
        image_stages: list[torch.Tensor],
        mlm_tokens: torch.Tensor,
        mlm_labels: torch.Tensor,
        rows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Text-only and fused MLM passes over ``rows`` (None: every row; the MLM term passes the
        rows with a masked word, see :func:`lightclip.task.mlm.mlm_rows`). After the first fusion
        stage both passes run as one batched forward of 2B rows (fewer, larger kernels; the same
        numbers as two separate passes)."""
        text = self.clip.text
        keep = rows
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
        token_features: bool = False,
        mlm_rows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Named outputs: ``image_embeds``/``text_embeds`` (B, D) normalised, ``logit_scale``;
        with ``token_features``: ``image_tokens`` (B, P, D), ``text_tokens`` (B, L, D),
        ``text_token_mask`` (B, L), ``token_matching`` (their assignment, being solved on a CPU
        thread while the rest of the forward runs: a ``PendingMatching``) and, when learned,
        ``token_logit_scale``; with ``mlm_tokens``/``mlm_labels``: MLM logits at the selected
        positions (M, V) for the text-only and fused passes (on ``mlm_rows`` only, when given),
        and their targets (M,). The tokens
        come as given: :meth:`lightclip.task.LightCLIPObjective.forward_inputs` trims padding."""
        clip = self.clip
        stages = clip.image_stages(images)
        final_states = clip.text_final_states(tokens)
        out = {
            "image_embeds": F.normalize(clip.image_embedding(stages), dim=-1),
            "text_embeds": F.normalize(clip.text_embedding(tokens, final_states), dim=-1),
            "logit_scale": clip.scale(),
        }
        if token_features:
            out.update(self._token_outputs(stages, final_states, tokens))
        if mlm_tokens is not None:
            if mlm_labels is None:
                raise ValueError("mlm_tokens needs mlm_labels (-100 where not selected)")
            out.update(self._mlm_logits(stages, mlm_tokens, mlm_labels, mlm_rows))
        return out
