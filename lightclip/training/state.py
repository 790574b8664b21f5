"""Checkpoints of a run: what one holds (weights, optimizer where kept, RNG, each rank's data
position, counters), writing it, and restoring a run from it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from lightclip.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    model_config_of,
    prune_checkpoints,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from lightclip.trainconfig import RunConfig, TrainConfig
from lightclip.training.parts import Parts
from lightclip.training.runtime import DistInfo
from pipeline.base.configs import from_dict, to_dict
from pipeline.stream import PositionTracker

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What a checkpoint carries beyond the weights: the step, the skipped-step count, the data position."""

    step: int = 0
    nonfinite: int = 0
    position: dict | None = None


def gather_positions(tracker: PositionTracker, info: DistInfo) -> list[dict]:
    """Every rank's data position, in rank order (each rank must call it)."""
    if info.world_size == 1:
        return [tracker.state()]
    positions: list[Any] = [None] * info.world_size
    dist.all_gather_object(positions, tracker.state())
    return positions


def keeps_optimizer(run: RunConfig, final: bool) -> bool:
    """``run.save_optimizer``: true/false always; ``auto`` in every checkpoint a run resumes
    from (step and stop checkpoints), not in the final one of a completed run."""
    return not final if run.save_optimizer == "auto" else bool(run.save_optimizer)


def optimizer_state(parts: Parts, run: RunConfig, final: bool = False) -> dict[str, Any]:
    """AdamW's moments and the grad scaler where :func:`keeps_optimizer` says so (the moments
    are twice the weights: a checkpoint without them is a third of the size)."""
    if not keeps_optimizer(run, final):
        return {}
    return {"optimizer": parts.optimizer.state_dict(), "scaler": parts.scaler.state_dict()}


def save(
    parts: Parts, cfg: TrainConfig, info: DistInfo, state: TrainState, tracker: PositionTracker, final: bool = False
) -> Path:
    """Checkpoint ``state.step``; ``final``: the last step of a completed run (see :func:`optimizer_state`)."""
    positions = gather_positions(tracker, info)
    path = checkpoint_path(cfg.run.out_dir, state.step)
    if info.is_main:
        save_checkpoint(
            {
                "step": state.step,
                "config": to_dict(cfg),
                "model": parts.model.state_dict(),
                **optimizer_state(parts, cfg.run, final),
                "rng": rng_state(),
                "data": {"positions": positions, "world_size": info.world_size},
                "counters": {"nonfinite": state.nonfinite},
            },
            path,
        )
        prune_checkpoints(cfg.run.out_dir, cfg.run.keep)
    if info.world_size > 1:
        dist.barrier()
    return path


def resume_path(run: RunConfig) -> Path | None:
    """The checkpoint ``run.resume`` names: none, the newest in ``run.out_dir`` (``auto``), or a path."""
    if run.resume in ("", "none", "no"):
        return None
    if run.resume == "auto":
        return latest_checkpoint(run.out_dir)
    return resolve_checkpoint(run.resume)


def restore(path: Path, parts: Parts, cfg: TrainConfig, info: DistInfo) -> TrainState:
    """Load model, optimizer, scaler, RNG states and this rank's data position."""
    ckpt = load_checkpoint(path)
    if model_config_of(ckpt, str(path)) != from_dict(type(cfg.model), to_dict(cfg.model)):
        raise CheckpointError(f"{path} was trained with another model config; use run.resume=none or a new run.out_dir")
    load_weights(parts.model, ckpt["model"], str(path))
    if "optimizer" in ckpt:
        parts.optimizer.load_state_dict(ckpt["optimizer"])
        parts.scaler.load_state_dict(ckpt["scaler"])
    else:
        log.warning(
            "%s holds no optimizer state (the final checkpoint of a completed run, or run.save_optimizer=false): "
            "AdamW's moments restart",
            path,
        )
    set_rng_state(ckpt["rng"])
    positions = ckpt["data"]["positions"]
    position = positions[info.rank] if ckpt["data"]["world_size"] == info.world_size else None
    if position is None:
        log.warning(
            "%s was written by %d rank(s), now %d: the data position restarts its epoch",
            path,
            ckpt["data"]["world_size"],
            info.world_size,
        )
    log.info("resumed from %s at step %d", path, ckpt["step"])
    return TrainState(step=int(ckpt["step"]), nonfinite=int(ckpt["counters"]["nonfinite"]), position=position)
