"""The weighted LightCLIP objective: a thin module over the active terms (see :mod:`.registry`)
that holds rank and world size and gathers what the terms need of the model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightclip.lossconfig import LossConfig
from lightclip.losses.instance import at_least_fp32
from lightclip.task.inputs import ForwardInputs
from lightclip.task.model import LightCLIP
from lightclip.task.registry import TERMS, term_weights
from lightclip.task.term import Term


def weighted_total(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Sum of ``weights[name] * terms[name]`` over the weighted names."""
    return sum(weights[name] * terms[name] for name in weights)


def fp32_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Floating outputs cast to at least fp32 (losses never run in bf16/fp16)."""
    return {k: at_least_fp32(v) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}


class LightCLIPObjective(nn.Module):
    """``forward(outputs, progress)`` -> the active terms' named scalars and ``loss``, their
    weighted sum. Every term is computed in fp32 with autocast off, whatever the model's precision."""

    def __init__(self, config: LossConfig, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.config = config
        self.rank = rank
        self.world_size = world_size
        self._weights = term_weights(config)
        self.terms: dict[str, Term] = {name: TERMS[name](config, rank, world_size) for name in self._weights}

    def weights(self) -> dict[str, float]:
        """{name: weight} of the active terms."""
        return dict(self._weights)

    def schedule_metrics(self, progress: float) -> dict[str, Any]:
        """The schedules' state at ``progress``, for the training log."""
        return {k: v for term in self.terms.values() for k, v in term.schedule_metrics(progress).items()}

    def prepare_model(self, model: LightCLIP) -> None:
        """Freeze the train-only modules that no active term trains (DDP then ignores them) and
        let each active term set the model up."""
        trained = {id(module) for term in self.terms.values() for module in term.trains(model)}
        for module in model.train_only():
            if id(module) not in trained:
                module.requires_grad_(False)
        for term in self.terms.values():
            term.prepare(model)

    def forward_inputs(
        self, model: LightCLIP, tokens: torch.Tensor, seed: int, length_multiple: int = 1
    ) -> ForwardInputs:
        """The forward inputs of one micro-batch's ``tokens`` (B, L, CPU), padding columns
        trimmed to a multiple of ``length_multiple``; ``seed`` draws whatever the terms randomise
        (the MLM masking, on the untrimmed tokens: the same whatever the multiple)."""
        options: dict[str, Any] = {}
        columns: dict[str, torch.Tensor] = {}
        for term in self.terms.values():
            options.update(term.forward_options())
            columns.update(term.token_inputs(model, tokens, seed))
        return ForwardInputs.trimmed(tokens, columns, options, length_multiple)

    def forward(self, outputs: dict[str, Any], progress: float) -> dict[str, torch.Tensor]:
        with torch.autocast(outputs["image_embeds"].device.type, enabled=False):
            outputs = fp32_outputs(outputs)
            terms: dict[str, torch.Tensor] = {}
            for term in self.terms.values():
                missing = [name for name in term.outputs if name not in outputs]
                if missing:
                    raise KeyError(f"loss term {term.name!r} needs model outputs {missing}")
                terms.update(term.loss(outputs, progress))
            terms["loss"] = weighted_total(terms, self._weights)
        return terms
