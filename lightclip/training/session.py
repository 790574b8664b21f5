"""Everything a run needs, checked, built and restored once before the first step (a failed
start writes nothing), and the start-up summary that describes it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from lightclip.checkpoint import load_tokenizer, run_config, run_metrics, run_tokenizer
from lightclip.evaluation.sources import check_names
from lightclip.trainconfig import TrainConfig
from lightclip.training.metrics import DataWait, trim_metrics
from lightclip.training.optim import per_rank_batch
from lightclip.training.parts import Parts, build_parts
from lightclip.training.runtime import DistInfo
from lightclip.training.state import TrainState, restore, resume_path
from lightclip.training.step import NonFiniteGuard
from pipeline.base.configs import ConfigError, save_resolved
from pipeline.base.shards import spec_folder
from pipeline.base.tokenizer import TOKENIZER_FILE, CaptionTokenizer
from pipeline.stream import StreamLoader, build_loader, count_samples, expand_shards


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


def check_eval(cfg: TrainConfig) -> None:
    """Refuse unknown evaluation dataset names before the first step, not at the first evaluation."""
    if cfg.eval_every > 0:
        check_names(cfg.eval.datasets)


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
        raise ConfigError(
            f"model.text.vocab_size {text.vocab_size} < tokenizer's {tokenizer.vocab_size}: set it to 0 (auto)"
        )
    model = replace(cfg.model, text=text)
    data = replace(cfg.data, image=replace(cfg.data.image, size=model.image_size))
    return replace(cfg, model=model, data=data)


def prepare_run_dir(cfg: TrainConfig, run_dir: Path, tokenizer_file: Path) -> None:
    """The run folder with the resolved config and a copy of the tokenizer beside the checkpoints."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_config(run_dir))
    if tokenizer_file.resolve() != run_tokenizer(run_dir).resolve():
        shutil.copyfile(tokenizer_file, run_tokenizer(run_dir))


@dataclass
class Session:
    """Everything the loop needs, built once by :func:`prepare_session`."""

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


def prepare_session(cfg: TrainConfig, info: DistInfo) -> Session:
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
