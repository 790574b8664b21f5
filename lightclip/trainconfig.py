"""Typed configuration of a training run (one dataclass per component, loaded from a recipe)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lightclip.evalconfig import (
    MAX_BATCH,
    MAX_CONTEXT,
    MAX_IMAGE_SIZE,
    MAX_WORKERS,
    EvalConfig,
    check_device,
    check_eval_config,
    check_range,
)
from lightclip.lossconfig import LossConfig
from lightclip.modelconfig import IMAGE_ENCODER_NAMES, ModelConfig
from pipeline.base.configs import ConfigError
from pipeline.base.streamconfig import StreamConfig

MAX_WIDTH = 8192
MAX_MEMBER_MB = 1 << 20  # 1 TB: no image or caption member is larger
MAX_LAYERS = 256
MAX_VOCAB = 4_000_000
MAX_TEXT_PARAMETERS = 2_000_000_000  # 8 GB of float32: beyond it a config is a typo or hostile


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
    fused: Literal["auto", True, False] = "auto"  # the fused AdamW kernel; auto: on a GPU


@dataclass
class RunConfig:
    """Where and how a run executes. ``resume``: ``auto`` (newest checkpoint of ``out_dir``
    if any), ``none``, or a checkpoint path. ``precision``: ``fp32``, ``bf16`` (autocast, CPU
    and GPU) or ``fp16`` (autocast with a grad scaler, GPU only). ``device``: ``auto``, ``cpu``,
    ``cuda``. ``threads`` > 0 sets torch's CPU threads per process. ``compile``: torch.compile
    the image tower and every text block in place (checkpoints keep their keys); off by default:
    on a 2-core CPU compiling costs minutes (docs/benchmarks.md). ``text_length_multiple``: the
    batch's caption length after padding is trimmed is rounded up to a multiple of it (padding,
    masked out: results unchanged), so that few shapes recur; 0 (auto): 16 when compiling (each
    new shape would recompile), else the exact length."""

    out_dir: str = "runs/lightclip"
    seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    save_every: int = 1000
    keep: int = 3  # newest step checkpoints kept (0: all)
    save_optimizer: Literal["auto", True, False] = "auto"  # auto: in step and stop checkpoints, not in the final one
    log_every: int = 10
    max_nonfinite: int = 5
    resume: str = "auto"
    tensorboard: bool = True
    progress: bool = True
    threads: int = 0
    compile: bool = False
    channels_last: Literal["auto", True, False] = "auto"  # NHWC conv weights and images; auto: conv encoders on a GPU
    text_length_multiple: int = 0

    @property
    def length_multiple(self) -> int:
        """``text_length_multiple`` with auto (0) resolved."""
        return self.text_length_multiple or (16 if self.compile else 1)


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


def check_model_config(model: ModelConfig, prefix: str = "model") -> None:
    """Encoder name and the bounds of every size in ``model``: one line naming the key.
    The same check runs on recipes and on the configs stored in checkpoints."""
    if model.image_encoder not in IMAGE_ENCODER_NAMES:
        raise ConfigError(
            f"{prefix}.image_encoder {model.image_encoder!r} is unknown; valid names: {sorted(IMAGE_ENCODER_NAMES)}"
        )
    check_range(model.image_size, f"{prefix}.image_size", 8, MAX_IMAGE_SIZE)
    check_range(model.embed_dim, f"{prefix}.embed_dim", 1, MAX_WIDTH)
    check_range(model.token_stage, f"{prefix}.token_stage", 1, 4)
    check_range(model.logit_scale_init, f"{prefix}.logit_scale_init", -100, 100)
    check_range(model.logit_scale_max, f"{prefix}.logit_scale_max", 1e-6, 1e6)
    check_range(model.fusion.heads, f"{prefix}.fusion.heads", 1, MAX_WIDTH)
    for stage in model.fusion.stages:
        check_range(stage, f"{prefix}.fusion.stages", 1, 4)
    check_text_config(model, f"{prefix}.text")


def check_text_config(model: ModelConfig, prefix: str) -> None:
    text = model.text
    check_range(text.vocab_size, f"{prefix}.vocab_size", 0, MAX_VOCAB)
    check_range(text.context_length, f"{prefix}.context_length", 3, MAX_CONTEXT)
    check_range(text.width, f"{prefix}.width", 1, MAX_WIDTH)
    check_range(text.heads, f"{prefix}.heads", 1, text.width)
    check_range(text.layers, f"{prefix}.layers", 1, MAX_LAYERS)
    check_range(text.stages, f"{prefix}.stages", 1, text.layers)
    check_range(text.mlp_ratio, f"{prefix}.mlp_ratio", 1e-3, 64)
    check_range(text.embedding_init_std, f"{prefix}.embedding_init_std", 0, 100)
    if text.width % text.heads or text.layers % text.stages:
        raise ConfigError(
            f"{prefix}: width {text.width} must split into {text.heads} heads and "
            f"layers {text.layers} into {text.stages} stages"
        )
    parameters = text.vocab_size * text.width + text.layers * text.width * text.width * (4 + 2 * text.mlp_ratio)
    if parameters > MAX_TEXT_PARAMETERS:
        raise ConfigError(
            f"{prefix}: vocab_size x width and layers x width^2 give {parameters:.3g} parameters "
            f"(limit {MAX_TEXT_PARAMETERS:.0e}); lower text.width, layers or vocab_size"
        )


def check_train_config(cfg: TrainConfig) -> None:
    """Every bound of a training recipe, before anything is built or written."""
    check_model_config(cfg.model)
    check_optim_config(cfg.optim)
    check_run_config(cfg.run)
    check_data_config(cfg.data)
    check_range(cfg.eval_every, "eval_every", 0)
    check_eval_config(cfg.eval)


def check_optim_config(opt: OptimConfig) -> None:
    check_range(opt.batch_size, "optim.batch_size", 1, MAX_BATCH)
    check_range(opt.accum_steps, "optim.accum_steps", 1, opt.batch_size)
    check_range(opt.max_steps, "optim.max_steps", 0)
    check_range(opt.epochs, "optim.epochs", 0 if opt.max_steps else 1)
    check_range(opt.lr, "optim.lr", 0)
    check_range(opt.min_lr, "optim.min_lr", 0, opt.lr)
    check_range(opt.weight_decay, "optim.weight_decay", 0)
    check_range(opt.warmup, "optim.warmup", 0, 1)
    check_range(opt.eps, "optim.eps", 1e-30, 1)
    check_range(opt.grad_clip, "optim.grad_clip", 0)
    for beta in opt.betas:
        check_range(beta, "optim.betas", 0, 0.999999)


def check_run_config(run: RunConfig) -> None:
    if not run.out_dir:
        raise ConfigError("run.out_dir is empty: name the run folder, e.g. run.out_dir=runs/mine")
    check_device(run.device, "run.device")
    for key in ("save_every", "log_every", "max_nonfinite"):
        check_range(getattr(run, key), f"run.{key}", 1)
    check_range(run.keep, "run.keep", 0)
    check_range(run.threads, "run.threads", 0, 4096)
    check_range(run.text_length_multiple, "run.text_length_multiple", 0, MAX_CONTEXT)


def check_data_config(data: StreamConfig) -> None:
    check_range(data.workers, "data.workers", 0, MAX_WORKERS)
    check_range(data.prefetch, "data.prefetch", 1, 1024)
    for key in ("shuffle_buffer", "shuffle_initial", "samples_per_epoch"):
        check_range(getattr(data, key), f"data.{key}", 0)
    check_range(data.variant_prob, "data.variant_prob", 0, 1)
    check_range(data.max_pixels, "data.max_pixels", 1)
    check_range(data.max_skipped_fraction, "data.max_skipped_fraction", 0)
    check_range(data.tar.max_member_mb, "data.tar.max_member_mb", 1e-6, MAX_MEMBER_MB)
