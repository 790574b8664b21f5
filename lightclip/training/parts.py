"""The trainable pieces of a run: model, objective, optimizer, grad scaler and the DDP wrapper."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lightclip.models import StagedImageEncoder
from lightclip.task import LightCLIP, LightCLIPObjective
from lightclip.trainconfig import RunConfig, TrainConfig
from lightclip.training.optim import build_optimizer
from lightclip.training.runtime import DistInfo
from pipeline.base.configs import ConfigError


@dataclass
class Parts:
    """The trainable pieces: ``model`` (raw), ``ddp`` (what is called), optimizer, scaler."""

    model: LightCLIP
    ddp: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    objective: LightCLIPObjective


def wants_channels_last(run: RunConfig, encoder: StagedImageEncoder, device: torch.device) -> bool:
    """``run.channels_last``: true, false, or ``auto`` (convolutional encoders on a GPU)."""
    if run.channels_last == "auto":
        return device.type == "cuda" and encoder.convolutional
    return run.channels_last is True


def build_parts(cfg: TrainConfig, info: DistInfo) -> Parts:
    """Seeded model and objective on ``info.device`` (channels-last, compiled as ``cfg.run`` says),
    AdamW, grad scaler, and the DDP wrapper when there are several ranks."""
    torch.manual_seed(cfg.run.seed)
    objective = LightCLIPObjective(cfg.loss, info.rank, info.world_size)
    model = LightCLIP(cfg.model)
    objective.prepare_model(model)  # freezes what no active term trains
    model = model.to(info.device)
    if wants_channels_last(cfg.run, model.clip.visual, info.device):
        model.clip.visual.use_channels_last()
    if cfg.run.compile:  # both towers in place (same state-dict keys); text block by block
        for module in (model.clip.visual, *(block for stage in model.clip.text.stages for block in stage)):
            module.compile()
    optimizer = build_optimizer(model, cfg.optim, info.device)
    if cfg.run.precision == "fp16" and info.device.type != "cuda":
        raise ConfigError("run.precision=fp16 needs a GPU; use bf16 or fp32 on CPU")
    scaler = torch.amp.GradScaler(info.device.type, enabled=cfg.run.precision == "fp16")
    ddp: nn.Module = model
    if info.world_size > 1:
        ddp = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    return Parts(model, ddp, optimizer, scaler, objective)
