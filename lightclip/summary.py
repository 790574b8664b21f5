"""Parameter and multiply-accumulate counts of each registered encoder's LightCLIP model."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lightclip.models import CLIP, IMAGE_ENCODERS, ModelConfig
from lightclip.task import LightCLIP
from pipeline.base.tokenizer import SPECIAL_IDS


@dataclass
class ModelSummary:
    encoder: str
    image_tower: int
    text_tower: int
    train_only: int
    inference: int
    image_macs: int
    text_macs: int


def count_parameters(*modules: nn.Module | nn.Parameter | None) -> int:
    total = 0
    for module in modules:
        if isinstance(module, nn.Parameter):
            total += module.numel()
        elif module is not None:
            total += sum(p.numel() for p in module.parameters())
    return total


def count_macs(fn, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one call (torch's FLOP counter over aten ops, halved)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*inputs)
    return counter.get_total_flops() // 2


def summarize(config: ModelConfig) -> ModelSummary:
    """Counts for one model config; MACs per image at ``config.image_size`` and per caption."""
    model = LightCLIP(config).eval()
    clip: CLIP = model.clip
    size, context = config.image_size, config.text.context_length
    tokens = torch.full((1, context), 5, dtype=torch.long)
    tokens[0, 0], tokens[0, -1] = SPECIAL_IDS.sos, SPECIAL_IDS.eos
    return ModelSummary(
        encoder=config.image_encoder,
        image_tower=count_parameters(clip.visual, clip.image_projection),
        text_tower=count_parameters(clip.text, clip.text_projection),
        train_only=count_parameters(model) - count_parameters(clip),
        inference=count_parameters(clip),
        image_macs=count_macs(clip.encode_image, torch.randn(1, 3, size, size)),
        text_macs=count_macs(clip.encode_text, tokens),
    )


def summary_table(summaries: list[ModelSummary]) -> str:
    """Markdown table; parameters in millions, MACs in G (image) and M... as labelled."""
    lines = [
        "| encoder | image tower | text tower | train-only | inference model | image GMACs | text GMACs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.encoder} | {s.image_tower / 1e6:.2f}M | {s.text_tower / 1e6:.2f}M | "
            f"{s.train_only / 1e6:.2f}M | {s.inference / 1e6:.2f}M | "
            f"{s.image_macs / 1e9:.3f} | {s.text_macs / 1e9:.3f} |"
        )
    return "\n".join(lines)


def summarize_all(base: ModelConfig | None = None) -> list[ModelSummary]:
    base = base or ModelConfig()
    return [summarize(_with_encoder(base, name)) for name in IMAGE_ENCODERS]


def _with_encoder(config: ModelConfig, name: str) -> ModelConfig:
    return replace(config, image_encoder=name)
