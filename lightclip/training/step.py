"""One optimizer step: the named loss terms of each micro-batch under autocast, gradient
accumulation (DDP syncs on the last micro-batch only), clipping, and the scaled update; a step
with a non-finite term is skipped on every rank, and too many in a row stop the run."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lightclip.trainconfig import TrainConfig
from lightclip.training.optim import lr_at
from lightclip.training.parts import Parts
from lightclip.training.runtime import DistInfo, any_rank, hold_threads
from pipeline.base.errors import UserError

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError, RuntimeError):
    """Too many consecutive steps with a non-finite loss."""


def nonfinite_names(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors holding a non-finite value, after one device sync for them all
    (the names are looked up one by one only when something is wrong)."""
    if not tensors or bool(torch.stack([torch.isfinite(v.detach()).all() for v in tensors.values()]).all()):
        return []
    return [name for name, value in tensors.items() if not torch.isfinite(value.detach()).all()]


def nonfinite_outputs(outputs: dict[str, torch.Tensor]) -> list[str]:
    return nonfinite_names({k: v for k, v in outputs.items() if torch.is_tensor(v) and v.is_floating_point()})


def nonfinite_terms(terms: dict[str, torch.Tensor], info: DistInfo) -> list[str]:
    """Names of non-finite terms; every rank sees a failure if any rank has one."""
    bad = nonfinite_names(terms)
    if any_rank(bool(bad), info) and not bad:
        bad = ["(on another rank)"]
    return bad


class NonFiniteGuard:
    """Counts skipped steps; ``limit`` consecutive ones raise :class:`NonFiniteLossError`."""

    def __init__(self, limit: int, total: int = 0):
        self.limit, self.total, self.in_a_row = limit, total, 0

    def update(self, step: int, bad: list[str]) -> None:
        if not bad:
            self.in_a_row = 0
            return
        self.total += 1
        self.in_a_row += 1
        log.warning("step %d: non-finite %s, step skipped (%d in a row)", step, bad, self.in_a_row)
        if self.in_a_row >= self.limit:
            raise NonFiniteLossError(
                f"loss non-finite for {self.in_a_row} steps in a row (run.max_nonfinite={self.limit}); "
                f"last at step {step}, terms {bad}. Lower optim.lr, set optim.grad_clip, or use precision=fp32"
            )


def step_seed(seed: int, step: int, micro: int) -> int:
    """A seed for one micro-batch of one step, the same again after a resume."""
    return (seed * 1_000_003 + step * 1_009 + micro) % (2**63)


def compute_terms(
    parts: Parts,
    cfg: TrainConfig,
    info: DistInfo,
    images: torch.Tensor,
    tokens: torch.Tensor,
    progress: float,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Named loss terms of one micro-batch (images on the device, tokens on CPU); the objective
    turns the tokens into the forward's inputs (trimmed on CPU, before the copy)."""
    inputs = parts.objective.forward_inputs(parts.model, tokens, seed, cfg.run.length_multiple).to(info.device)
    amp_dtype = torch.float16 if cfg.run.precision == "fp16" else torch.bfloat16
    with torch.autocast(info.device.type, dtype=amp_dtype, enabled=cfg.run.precision != "fp32"):
        outputs = parts.ddp(images, inputs.tokens, **inputs.extra)
        broken = nonfinite_outputs(outputs)
        if any_rank(bool(broken), info):  # the matching cannot run on NaN costs; every rank
            broken = broken or ["(on another rank)"]  # skips together, or the gather would hang
            nan = outputs["image_embeds"].new_tensor(float("nan"))
            return {**{f"output:{name}": nan for name in broken}, "loss": nan}
        terms = parts.objective(outputs, progress)
    hold_threads(info)
    return terms


@dataclass
class StepResult:
    """One optimizer step: the mean terms (0-d tensors, still on the device: read ``terms``
    on logging steps only, as reading them waits for the device), or no terms and the
    ``nonfinite`` names when a term was non-finite (the step was skipped: no update, gradients dropped)."""

    values: dict[str, torch.Tensor] = field(default_factory=dict)
    nonfinite: list[str] = field(default_factory=list)

    @property
    def terms(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.values.items()}

    @property
    def skipped(self) -> bool:
        return bool(self.nonfinite)


MicroBatch = tuple[torch.Tensor, torch.Tensor]  # images (b, 3, S, S) on the device, tokens (b, L) on CPU


def train_step(
    parts: Parts, cfg: TrainConfig, info: DistInfo, micro_batches: list[MicroBatch], step: int, total: int
) -> StepResult:
    """One optimizer step over the micro-batches."""
    optimizer, scaler, model = parts.optimizer, parts.scaler, parts.ddp
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, total, cfg.optim)
    optimizer.zero_grad(set_to_none=True)
    sums: dict[str, torch.Tensor] = {}  # summed on the device: no sync inside the step
    n = len(micro_batches)
    for i, (images, tokens) in enumerate(micro_batches):
        sync = i == n - 1 or not isinstance(model, DistributedDataParallel)
        with nullcontext() if sync else model.no_sync():
            # Stochastic layers (e.g. Swin's drop path) draw from a per-step seed: exact resume.
            torch.manual_seed(step_seed(cfg.run.seed + 7919 * info.rank, step, i))
            terms = compute_terms(parts, cfg, info, images, tokens, step / total, step_seed(cfg.run.seed, step, i))
            bad = nonfinite_terms(terms, info)
            if bad:
                optimizer.zero_grad(set_to_none=True)
                return StepResult(nonfinite=bad)
            scaler.scale(terms["loss"] / n).backward()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach().float() / n
    if cfg.optim.grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(parts.model.parameters(), cfg.optim.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    parts.model.clip.clamp_logit_scale()
    return StepResult(sums)
