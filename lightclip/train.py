"""The LightCLIP trainer: one compact loop over ``pipeline.stream`` batches.

AdamW (no decay on norms, biases, positional embeddings, logit scale), linear warmup + cosine,
gradient accumulation, AMP (bf16 autocast; fp16 + grad scaler on GPU), DDP through torchrun,
label schedule by training progress, atomic checkpoints with exact mid-epoch resume, metrics
to ``metrics.jsonl`` and TensorBoard, a start-up summary, and a checkpoint on SIGINT/SIGTERM
(:class:`TrainingInterrupted`). Entry point: :func:`train`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from lightclip.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    load_tokenizer,
    load_weights,
    model_config_of,
    prune_checkpoints,
    resolve_checkpoint,
    rng_state,
    run_config,
    run_metrics,
    run_tokenizer,
    save_checkpoint,
    set_rng_state,
)
from lightclip.losses import LightCLIPObjective
from lightclip.models import LightCLIP, StagedImageEncoder
from lightclip.trainconfig import OptimConfig, RunConfig, TrainConfig, check_train_config
from pipeline.base.configs import ConfigError, from_dict, save_resolved, to_dict
from pipeline.base.progress import progress_bar
from pipeline.base.shards import spec_folder
from pipeline.base.tokenizer import TOKENIZER_FILE, CaptionTokenizer
from pipeline.stream import (
    PositionTracker,
    StreamLoader,
    build_loader,
    count_samples,
    expand_shards,
    finish_images,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


DATA_BOUND = 0.1  # above this share of loop time spent waiting for batches, the summary says so


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps with a non-finite loss."""


class TrainingInterrupted(Exception):
    """A stop signal arrived; the run saved ``checkpoint`` at ``step`` (rerun to resume)."""

    def __init__(self, step: int, signum: int, checkpoint: Path | None, is_main: bool = True):
        super().__init__(f"stopped at step {step}; rerun the same command to resume")
        self.step, self.signum, self.checkpoint, self.is_main = step, signum, checkpoint, is_main


@dataclass
class TrainResult:
    checkpoint: Path
    run_dir: Path
    step: int
    last_metrics: dict[str, Any] = field(default_factory=dict)
    data_wait_fraction: float | None = None  # of this run's loop time, blocked on the loader


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    threads: int = 0  # torch CPU threads to hold (0: leave as found)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class Parts:
    """The trainable pieces: ``model`` (raw), ``ddp`` (what is called), optimizer, scaler."""

    model: LightCLIP
    ddp: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    objective: LightCLIPObjective


# --- setup ------------------------------------------------------------------------------------


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"run.device={name}: this machine has no GPU; use run.device=cpu or auto")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup_distributed(run: RunConfig) -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on GPU)."""
    if run.threads > 0:
        torch.set_num_threads(run.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(run.device, local)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    return DistInfo(rank, world, local, device, torch.get_num_threads())


def hold_threads(info: DistInfo) -> None:
    """Restore torch's CPU thread count: numba's OpenMP layer (the token matching) resets it,
    which would change float reduction order from one step to the next."""
    if info.threads and torch.get_num_threads() != info.threads:
        torch.set_num_threads(info.threads)


def check_shards(spec: str, allow_pipe: bool = False) -> None:
    """Fail early, naming the path, when local shards are missing or the spec is refused."""
    first = expand_shards(spec, allow_pipe)[0]
    if not first.startswith("pipe:") and not Path(first).is_file():
        raise FileNotFoundError(f"shard {first} does not exist (data.shards={spec!r})")


def check_batch_fits(cfg: TrainConfig, world_size: int) -> None:
    """Refuse a global batch larger than one epoch of data, naming the largest that fits."""
    opt, data = cfg.optim, cfg.data
    samples = data.samples_per_epoch or count_samples(expand_shards(data.shards))
    unit = world_size * opt.accum_steps  # the global batch splits into this many equal parts
    if opt.batch_size > samples:
        fits = samples - samples % unit
        hint = (
            f"use optim.batch_size<={fits}"
            if fits
            else f"the data set is smaller than {unit} rank(s) x accumulation steps"
        )
        raise ConfigError(
            f"optim.batch_size={opt.batch_size} is larger than the data set ({samples} samples "
            f"per epoch in data.shards={data.shards}): {hint}"
        )


def tokenizer_path(cfg: TrainConfig) -> Path:
    """``cfg.tokenizer`` or the ``tokenizer.json`` beside the (first) shards."""
    if cfg.tokenizer:
        return Path(cfg.tokenizer)
    return spec_folder(cfg.data.shards) / TOKENIZER_FILE


def resolve_config(cfg: TrainConfig, tokenizer: CaptionTokenizer) -> TrainConfig:
    """Fill what follows from elsewhere: vocabulary size, loader image size."""
    text = cfg.model.text
    if text.vocab_size == 0:
        text = replace(text, vocab_size=tokenizer.vocab_size)
    if text.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"model.text.vocab_size {text.vocab_size} < tokenizer's {tokenizer.vocab_size}: set it to 0 (auto)"
        )
    model = replace(cfg.model, text=text)
    data = replace(cfg.data, image=replace(cfg.data.image, size=model.image_size))
    return replace(cfg, model=model, data=data)


def prepare_run_dir(cfg: TrainConfig, run_dir: Path, tokenizer_file: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_config(run_dir))
    if tokenizer_file.resolve() != run_tokenizer(run_dir).resolve():
        shutil.copyfile(tokenizer_file, run_tokenizer(run_dir))


def check_eval(cfg: TrainConfig) -> None:
    """Refuse unknown evaluation dataset names before the first step, not at the first evaluation."""
    if cfg.eval_every > 0:
        from lightclip.evaluation.sources import check_names

        check_names(cfg.eval.datasets)


def no_decay(name: str, param: nn.Parameter) -> bool:
    """open_clip's rule: vectors/scalars, norms, biases, positional embeddings, logit scale."""
    lowered = name.lower()
    return param.ndim < 2 or any(k in lowered for k in ("bn", "ln", "norm", "bias", "logit_scale", "positional"))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
    ]


def wants_channels_last(run: RunConfig, encoder: StagedImageEncoder, device: torch.device) -> bool:
    """``run.channels_last``: true, false, or ``auto`` (convolutional encoders on a GPU)."""
    if run.channels_last == "auto":
        return device.type == "cuda" and encoder.convolutional
    return run.channels_last is True


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


def build_parts(cfg: TrainConfig, info: DistInfo) -> Parts:
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
        raise ValueError("run.precision=fp16 needs a GPU; use bf16 or fp32 on CPU")
    scaler = torch.amp.GradScaler(info.device.type, enabled=cfg.run.precision == "fp16")
    ddp: nn.Module = model
    if info.world_size > 1:
        ddp = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    return Parts(model, ddp, optimizer, scaler, objective)


# --- schedule, one step -----------------------------------------------------------------------


def lr_at(step: int, total: int, opt: OptimConfig) -> float:
    """Linear warmup from 0 over ``warmup * total`` steps, then cosine to ``min_lr`` at ``total``."""
    warmup = int(round(opt.warmup * total))
    if step < warmup:
        return opt.lr * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return opt.min_lr + 0.5 * (opt.lr - opt.min_lr) * (1 + math.cos(math.pi * progress))


def per_rank_batch(opt: OptimConfig, world_size: int) -> int:
    parts = world_size * opt.accum_steps
    if opt.batch_size % parts:
        raise ValueError(
            f"optim.batch_size {opt.batch_size} does not split into {world_size} rank(s) x {opt.accum_steps} accumulation steps"
        )
    return opt.batch_size // parts


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
    inputs = parts.objective.forward_inputs(parts.model, tokens, seed).to(info.device)
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


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is True on any rank."""
    if info.world_size == 1:
        return flag
    tensor = torch.tensor([float(flag)], device=info.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def step_seed(seed: int, step: int, micro: int) -> int:
    return (seed * 1_000_003 + step * 1_009 + micro) % (2**63)


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


# --- metrics and checkpoints ------------------------------------------------------------------


class MetricsLogger:
    """JSON lines in ``metrics.jsonl`` and, optionally, TensorBoard scalars (main rank only)."""

    def __init__(self, run_dir: Path, tensorboard: bool, enabled: bool):
        self.enabled = enabled
        self.path = run_metrics(run_dir)
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.writer is not None:
            for name, value in metrics.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def gather_positions(tracker: PositionTracker, info: DistInfo) -> list[dict]:
    if info.world_size == 1:
        return [tracker.state()]
    positions: list[Any] = [None] * info.world_size
    dist.all_gather_object(positions, tracker.state())
    return positions


@dataclass
class TrainState:
    step: int = 0
    nonfinite: int = 0
    position: dict | None = None


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


def metric_step(line: str) -> int | None:
    """The ``step`` of one metrics line; None for a line that is not a JSON object (a torn
    write: the process died mid-line)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step", 0)
    return step if isinstance(step, int) else None


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


def trim_metrics(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written after the checkpoint a resumed run starts from)
    and unreadable lines (a crash mid-write), with a warning naming the file."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    steps = [metric_step(line) for line in lines]
    torn = [number for number, found in enumerate(steps, 1) if found is None]
    if torn:
        log.warning(
            "%s: dropped %d unreadable line(s) (line %s; a write cut short by a crash)",
            path,
            len(torn),
            ", ".join(map(str, torn[:5])),
        )
    kept = [line for line, found in zip(lines, steps) if found is not None and found <= step]
    if len(kept) != len(lines):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)


def resume_path(run: RunConfig) -> Path | None:
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


def run_eval_hook(parts: Parts, cfg: TrainConfig, info: DistInfo, tokenizer: CaptionTokenizer) -> dict[str, float]:
    """Zero-shot evaluation on the main rank; metrics flattened as ``eval/<dataset>/<metric>``."""
    flat: dict[str, float] = {}
    if info.is_main:
        from lightclip.evaluation import evaluate_model

        parts.model.eval()
        with torch.no_grad():
            results = evaluate_model(parts.model.clip, tokenizer, cfg.eval, info.device)
        parts.model.train()
        for dataset, metrics in results.items():
            for metric, value in (metrics or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    flat[f"eval/{dataset}/{metric}"] = float(value)
    if info.world_size > 1:
        dist.barrier()
    return flat


def global_sum(value: int, info: DistInfo) -> int:
    if info.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=info.device)
    dist.all_reduce(tensor)
    return int(tensor.item())


# --- the loop ---------------------------------------------------------------------------------


def train(cfg: TrainConfig) -> TrainResult:
    """Train from ``cfg``; returns the final checkpoint (also when the run was already done)."""
    check_train_config(cfg)
    info = setup_distributed(cfg.run)
    try:
        return _train(cfg, info)
    finally:
        if dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            dist.destroy_process_group()


class StopSignals:
    """SIGINT/SIGTERM set a flag that the loop reads after each step (it then saves and stops);
    a second signal, seconds later, stops at once. Installed only from the main thread; the previous handlers
    come back on exit. Loader workers forked meanwhile inherit the harmless flag handler."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    REPEAT_S = 2.0  # a repeat this soon is the same request (torchrun forwards Ctrl-C to each rank)

    def __init__(self) -> None:
        self.signum, self.first = 0, 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        now = time.monotonic()
        if not self.signum:
            self.signum, self.first = signum, now
        elif now - self.first > self.REPEAT_S:
            raise KeyboardInterrupt

    def requested(self, info: DistInfo) -> bool:
        """True on every rank once any rank was signalled."""
        return any_rank(bool(self.signum), info)


class DataWait:
    """Seconds spent waiting for the next batch: since the last log line and over the run.
    A fraction near 1 means the loader, not the model, sets the pace."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.window = self.total = 0.0
        self.started: float | None = None

    def next(self, batches: Iterator[T]) -> T:
        """``next(batches)``, timed."""
        start = self.clock()
        if self.started is None:
            self.started = start
        try:
            return next(batches)
        finally:
            waited = self.clock() - start
            self.window += waited
            self.total += waited

    def take_window(self) -> float:
        waited, self.window = self.window, 0.0
        return waited

    def run_fraction(self) -> float | None:
        """The run's share of loop time blocked on the loader (None before the first batch)."""
        if self.started is None:
            return None
        return min(1.0, self.total / max(self.clock() - self.started, 1e-9))


@dataclass
class Session:
    """Everything the loop needs, built once by :func:`_prepare`."""

    cfg: TrainConfig
    info: DistInfo
    parts: Parts
    loader: StreamLoader
    tokenizer: CaptionTokenizer
    total: int
    steps_per_epoch: int
    state: TrainState
    resumed_from: Path | None
    guard: NonFiniteGuard
    data_wait: DataWait = field(default_factory=DataWait)


def _prepare(cfg: TrainConfig, info: DistInfo) -> Session:
    """Check, build and restore everything; the run folder is written only once all of it
    succeeded (a failed start leaves nothing behind)."""
    check_shards(cfg.data.shards, cfg.data.allow_pipe)
    check_eval(cfg)
    check_batch_fits(cfg, info.world_size)
    tok_file = tokenizer_path(cfg)
    tokenizer = load_tokenizer(tok_file, cfg.model.text.context_length, "tokenizer")
    cfg = resolve_config(cfg, tokenizer)
    micro = per_rank_batch(cfg.optim, info.world_size)
    accum = cfg.optim.accum_steps
    loader = build_loader(cfg.data, tokenizer, micro, info.rank, info.world_size, cfg.run.seed, multiple_of=accum)
    parts = build_parts(cfg, info)
    steps_per_epoch = loader.num_batches // accum
    total = cfg.optim.max_steps or cfg.optim.epochs * steps_per_epoch
    ckpt = resume_path(cfg.run)
    state = restore(ckpt, parts, cfg, info) if ckpt else TrainState()
    if info.is_main:  # lines past the restored step (or all, on a fresh start) are rewritten
        prepare_run_dir(cfg, Path(cfg.run.out_dir), tok_file)
        trim_metrics(run_metrics(cfg.run.out_dir), state.step)
    guard = NonFiniteGuard(cfg.run.max_nonfinite, state.nonfinite)
    return Session(cfg, info, parts, loader, tokenizer, total, steps_per_epoch, state, ckpt, guard)


def startup_summary(session: Session) -> list[str]:
    """What a user checks before a long run: model, device, batch, steps, data, output."""
    cfg, info, model = session.cfg, session.info, session.parts.model
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    urls = session.loader.dataset.urls
    micro = per_rank_batch(cfg.optim, info.world_size)
    epochs = f"{session.total / max(session.steps_per_epoch, 1):.3g}"
    start = (
        f"resuming at step {session.state.step} from {session.resumed_from}"
        if session.resumed_from
        else "starting at step 0"
    )
    return [
        f"model: {cfg.model.image_encoder}, {params / 1e6:.2f}M parameters ({trainable / 1e6:.2f}M trainable)",
        f"device: {info.device} x {info.world_size} rank(s), precision {cfg.run.precision}",
        f"global batch: {cfg.optim.batch_size} = {info.world_size} rank(s) x {cfg.optim.accum_steps} "
        f"accumulation step(s) x {micro}",
        f"steps: {session.total:,} ({session.steps_per_epoch:,} per epoch, {epochs} epochs)",
        f"data: {session.loader.num_batches * micro * info.world_size:,} samples per epoch from "
        f"{len(urls):,} shard(s) ({cfg.data.shards})",
        f"output: {cfg.run.out_dir} (checkpoint every {cfg.run.save_every} steps, {start})",
    ]


def _train(cfg: TrainConfig, info: DistInfo) -> TrainResult:
    with StopSignals() as stop:  # a signal during start-up stops after the first step
        session = _prepare(cfg, info)
        if info.is_main:
            log.info("training\n  %s", "\n  ".join(startup_summary(session)))
        cfg = session.cfg
        logger = MetricsLogger(Path(cfg.run.out_dir), cfg.run.tensorboard, info.is_main)
        bar = progress_bar(
            total=session.total,
            initial=session.state.step,
            desc="train",
            disable=not (info.is_main and cfg.run.progress),
        )
        try:
            path, metrics = _loop(session, logger, bar, stop)
        finally:
            bar.close()
            logger.close()
    if path is None:
        raise CheckpointError(f"no checkpoint written or found in {cfg.run.out_dir}")
    waited = session.data_wait.run_fraction()
    if info.is_main and waited is not None:
        log.info(
            "waited for data %.0f%% of the loop time%s",
            100 * waited,
            " (the loader is the limit: more data.workers?)" if waited > DATA_BOUND else "",
        )
    return TrainResult(path, Path(cfg.run.out_dir), session.state.step, metrics, waited)


def _loop(session: Session, logger: MetricsLogger, bar: tqdm, stop: StopSignals):
    """Epochs until ``total`` steps; returns (last checkpoint, last logged metrics)."""
    cfg, info, parts, state = session.cfg, session.info, session.parts, session.state
    accum, loader, total = cfg.optim.accum_steps, session.loader, session.total
    path, metrics = session.resumed_from, {}
    waits = session.data_wait
    parts.model.train()
    while state.step < total:
        tracker = PositionTracker(cfg.data.workers, state.step // session.steps_per_epoch, state.position)
        batches = iter(loader.epoch(tracker.epoch, state.position))
        state.position, tick, logged = None, time.perf_counter(), state.step
        while state.step < total and tracker.batches + accum <= loader.num_batches:
            group = [waits.next(batches) for _ in range(accum)]
            for batch in group:
                tracker.update(batch.position)
            micro = [(finish_images(b, cfg.data.image, info.device), b.tokens) for b in group]
            result = train_step(parts, cfg, info, micro, state.step, total)
            session.guard.update(state.step, result.nonfinite)
            state.step, state.nonfinite = state.step + 1, session.guard.total
            bar.update(1)
            evaluate = cfg.eval_every > 0 and state.step % cfg.eval_every == 0
            if evaluate or state.step % cfg.run.log_every == 0 or state.step == total:
                window = LogWindow(state.step - logged, time.perf_counter() - tick, waits.take_window())
                metrics = step_metrics(session, result, tracker, window)
                if evaluate:
                    metrics.update(run_eval_hook(parts, cfg, info, session.tokenizer))
                tick, logged = time.perf_counter(), state.step
                logger.log(state.step, metrics)
                bar.set_postfix(loss=metrics.get("loss", float("nan")))
            saved = state.step % cfg.run.save_every == 0 or state.step == total
            if saved:
                path = save(parts, cfg, info, state, tracker, final=state.step == total)
            if stop.requested(info):
                path = path if saved else save(parts, cfg, info, state, tracker)
                raise TrainingInterrupted(state.step, stop.signum, path, info.is_main)
        del batches
    return path, metrics


@dataclass
class LogWindow:
    """The optimizer steps since the previous log line, the seconds they took and how many
    of those the loop spent blocked on the loader."""

    steps: int
    seconds: float
    data_wait_s: float = 0.0

    @property
    def data_wait_fraction(self) -> float:
        return min(1.0, self.data_wait_s / max(self.seconds, 1e-9))


def step_metrics(session: Session, result: StepResult, tracker: PositionTracker, window: LogWindow) -> dict[str, Any]:
    """What one log line holds: every term, lr, logit scale, the objective's schedule,
    throughput, counters."""
    parts, state = session.parts, session.state
    return {
        "epoch": tracker.epoch,
        **result.terms,
        "lr": parts.optimizer.param_groups[0]["lr"],
        "logit_scale": float(parts.model.clip.scale().detach()),
        **parts.objective.schedule_metrics((state.step - 1) / session.total),
        "samples_per_s": session.cfg.optim.batch_size * window.steps / max(window.seconds, 1e-9),
        "data_wait_fraction": window.data_wait_fraction,
        "skipped_samples": global_sum(tracker.skipped, session.info),
        "nonfinite_steps": state.nonfinite,
    }
