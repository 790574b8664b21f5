"""AdamW with open_clip's weight-decay groups, the learning-rate schedule, and the per-rank batch."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lightclip.trainconfig import OptimConfig
from pipeline.base.configs import ConfigError


def no_decay(name: str, param: nn.Parameter) -> bool:
    """open_clip's rule: vectors/scalars, norms, biases, positional embeddings, logit scale."""
    lowered = name.lower()
    return param.ndim < 2 or any(k in lowered for k in ("bn", "ln", "norm", "bias", "logit_scale", "positional"))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The trainable parameters in two AdamW groups: with ``weight_decay``, and without (:func:`no_decay`)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, opt: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; ``opt.fused``: true, false (torch's default
    implementation), or ``auto`` (the fused kernel on a GPU, one launch for all tensors)."""
    fused = opt.fused is True or (opt.fused == "auto" and device.type == "cuda")
    return torch.optim.AdamW(
        param_groups(model, opt.weight_decay),
        lr=opt.lr,
        betas=opt.betas,
        eps=opt.eps,
        **({"fused": True} if fused else {}),
    )


def lr_at(step: int, total: int, opt: OptimConfig) -> float:
    """Linear warmup from 0 over ``warmup * total`` steps, then cosine to ``min_lr`` at ``total``."""
    warmup = int(round(opt.warmup * total))
    if step < warmup:
        return opt.lr * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return opt.min_lr + 0.5 * (opt.lr - opt.min_lr) * (1 + math.cos(math.pi * progress))


def per_rank_batch(opt: OptimConfig, world_size: int) -> int:
    """The micro-batch one rank runs: the global batch over ranks x accumulation steps (which must divide it)."""
    parts = world_size * opt.accum_steps
    if opt.batch_size % parts:
        raise ConfigError(
            f"optim.batch_size {opt.batch_size} does not split into {world_size} rank(s) x "
            f"{opt.accum_steps} accumulation steps"
        )
    return opt.batch_size // parts
