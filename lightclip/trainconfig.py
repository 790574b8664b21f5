"""Typed configuration of a training run (one dataclass per component, loaded from a recipe)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lightclip.evalconfig import EvalConfig
from lightclip.losses import LossConfig
from lightclip.models import ModelConfig
from pipeline.stream import StreamConfig


@dataclass
class OptimConfig:
    """AdamW with linear warmup (``warmup`` = fraction of all steps) and cosine decay.

    ``batch_size`` is global (all ranks, all accumulation steps together); ``max_steps`` > 0
    caps the run (the schedule then spans ``max_steps``). ``grad_clip`` 0 = off.
    """

    lr: float = 5e-4
    min_lr: float = 0.0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup: float = 0.05
    batch_size: int = 4096
    accum_steps: int = 1
    grad_clip: float = 0.0
    epochs: int = 32
    max_steps: int = 0


@dataclass
class RunConfig:
    """Where and how a run executes. ``resume``: ``auto`` (newest checkpoint of ``out_dir``
    if any), ``none``, or a checkpoint path. ``precision``: ``fp32``, ``bf16`` (autocast, CPU
    and GPU) or ``fp16`` (autocast with a grad scaler, GPU only). ``device``: ``auto``, ``cpu``,
    ``cuda``. ``threads`` > 0 sets torch's CPU threads per process. ``compile``: torch.compile
    the image tower and every text block in place (checkpoints keep their keys); off by default:
    on a 2-core CPU compiling costs minutes and recompiles as caption lengths vary (docs/benchmarks.md)."""

    out_dir: str = "runs/lightclip"
    seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    save_every: int = 1000
    keep: int = 3
    log_every: int = 10
    max_nonfinite: int = 5
    resume: str = "auto"
    tensorboard: bool = True
    progress: bool = True
    threads: int = 0
    compile: bool = False


@dataclass
class TrainConfig:
    """A whole run. ``data.image.size`` follows ``model.image_size``; ``model.text.vocab_size``
    0 takes the tokenizer's size. ``tokenizer``: path, default ``tokenizer.json`` beside the
    shards. ``eval_every`` > 0 runs ``lightclip.evaluation.evaluate_model`` with ``eval`` (its
    dataset names are checked before the first step)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: StreamConfig = field(default_factory=StreamConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    tokenizer: str = ""
    eval_every: int = 0
    eval: EvalConfig = field(default_factory=EvalConfig)
