"""The weighted LightCLIP objective: a thin module that holds the schedule and rank/world size,
and says what its terms need of the model (extra forward inputs, trained modules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lightclip.lossconfig import LossConfig  # noqa: F401  (re-exported)
from lightclip.losses.distributed import gather_embeddings
from lightclip.losses.instance import LabelMode, at_least_fp32, instance_loss, label_mode_at
from lightclip.losses.mlm import mask_global_batch, mlm_terms
from lightclip.losses.token import token_loss

if TYPE_CHECKING:  # the models import the losses: no import cycle at run time
    from lightclip.models import LightCLIP


@dataclass
class ForwardInputs:
    """What the model's forward takes besides the images: ``tokens`` (B, L) and the keyword
    inputs the active terms ask for (``token_features``, masked tokens and labels...)."""

    tokens: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device) -> ForwardInputs:
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.extra.items()}
        return ForwardInputs(self.tokens.to(device), moved)


def weighted_total(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Sum of ``weights[name] * terms[name]`` over the weighted names."""
    return sum(weights[name] * terms[name] for name in weights)


def fp32_outputs(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating outputs cast to at least fp32 (losses never run in bf16/fp16)."""
    return {k: at_least_fp32(v) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}


class LightCLIPObjective(nn.Module):
    """``forward(outputs, progress)`` -> {"loss", "instance", "token", "mlm", ...} scalars.

    Every term is computed in fp32 with autocast off, whatever the model's precision.
    ``instance_onehot`` (detached, not in the loss) is CLIP's one-hot cross entropy in every
    label mode, so that curves stay comparable when the label mode changes."""

    def __init__(self, config: LossConfig, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.config = config
        self.rank = rank
        self.world_size = world_size

    def label_mode(self, progress: float) -> LabelMode:
        cfg = self.config
        return cfg.label_mode or label_mode_at(progress, cfg.r1, cfg.r2)

    def schedule_metrics(self, progress: float) -> dict[str, Any]:
        """The schedule's state at ``progress``, for the training log."""
        return {"label_mode": self.label_mode(progress)}

    def prepare_model(self, model: LightCLIP) -> None:
        """Freeze the train-only modules that no active term uses (DDP then ignores them);
        check the token stage and set the token scale when the token term is on."""
        cfg = self.config
        if not cfg.uses_mlm:
            model.fusion.requires_grad_(False)
            model.mlm_head.requires_grad_(False)
        if not cfg.uses_token and model.image_token_projection is not None:
            model.image_token_projection.requires_grad_(False)
            model.text_token_projection.requires_grad_(False)
        if cfg.uses_token:
            from lightclip.models.clip import check_token_stage

            check_token_stage(model.config)
            model.token_logit_scale.data.fill_(cfg.token.initial_logit_scale)
            model.token_logit_scale.requires_grad_(cfg.token.learnable)

    def mask(self, model: LightCLIP, tokens: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """MLM masking of this rank's rows (CPU), the same for any number of ranks."""
        config = model.config
        return mask_global_batch(
            tokens,
            model.special_ids,
            config.mask_id,
            config.text.vocab_size,
            self.config.masking,
            seed,
            self.rank,
            self.world_size,
        )

    def forward_inputs(self, model: LightCLIP, tokens: torch.Tensor, seed: int) -> ForwardInputs:
        """The forward inputs of one micro-batch's ``tokens`` (B, L, CPU), padding columns
        trimmed; ``seed`` draws whatever the terms randomise (the MLM masking)."""
        from lightclip.models.clip import trim_padding

        pad_id = model.config.text.pad_id
        extra: dict[str, Any] = {"token_features": self.config.uses_token}
        if not self.config.uses_mlm:
            (tokens,) = trim_padding(tokens, pad_id=pad_id)
            return ForwardInputs(tokens, extra)
        tokens, masked, labels = trim_padding(tokens, *self.mask(model, tokens, seed), pad_id=pad_id)
        return ForwardInputs(tokens, {**extra, "mlm_tokens": masked, "mlm_labels": labels})

    def weights(self) -> dict[str, float]:
        cfg = self.config
        weights = {"instance": cfg.instance_weight, "token": cfg.token_weight, "mlm": cfg.mlm_weight}
        return {name: w for name, w in weights.items() if w > 0}

    def forward(self, outputs: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        device = outputs["image_embeds"].device.type
        with torch.autocast(device, enabled=False):
            return self._terms(fp32_outputs(outputs), progress)

    def _instance_terms(self, outputs: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        image, text = outputs["image_embeds"], outputs["text_embeds"]
        gathered = {
            "all_image_embeds": gather_embeddings(image, self.rank, self.world_size),
            "all_text_embeds": gather_embeddings(text, self.rank, self.world_size),
            "rank": self.rank,
        }
        mode = self.label_mode(progress)
        scale = outputs["logit_scale"]
        terms = {
            "instance": instance_loss(
                image, text, scale, mode, cfg.alpha, importance_temperature=cfg.importance_temperature, **gathered
            )
        }
        if mode == "one_hot":
            terms["instance_onehot"] = terms["instance"].detach()
        else:
            with torch.no_grad():
                terms["instance_onehot"] = instance_loss(
                    image.detach(),
                    text.detach(),
                    scale.detach(),
                    "one_hot",
                    **{k: v.detach() if torch.is_tensor(v) else v for k, v in gathered.items()},
                )
        return terms

    def _terms(self, outputs: dict[str, torch.Tensor], progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        terms = self._instance_terms(outputs, progress)
        if cfg.uses_token:
            pending = outputs.get("token_matching")  # started by the model's forward
            terms["token"] = token_loss(
                outputs["image_tokens"],
                outputs["text_tokens"],
                outputs["text_token_mask"],
                cfg.token,
                scale=outputs.get("token_logit_scale"),
                matched=None if pending is None else pending.result(),
            )
        if cfg.uses_mlm:
            terms.update(mlm_terms(outputs["mlm_logits_text"], outputs["mlm_logits_fused"], outputs["mlm_targets"]))
        terms["loss"] = weighted_total(terms, self.weights())
        return terms
