"""The training loop: epochs of ``pipeline.stream`` batches until the last step, with logging,
zero-shot evaluation, checkpoints and a clean stop on a signal. Entry point: :func:`train`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from lightclip.checkpoint import CheckpointError
from lightclip.evaluation import evaluate_model
from lightclip.trainconfig import TrainConfig, check_train_config
from lightclip.training.metrics import LogWindow, MetricsLogger, step_metrics
from lightclip.training.parts import Parts
from lightclip.training.runtime import DistInfo, end_distributed, setup_distributed
from lightclip.training.session import Session, prepare_session, startup_summary
from lightclip.training.signals import StopSignals, TrainingInterrupted
from lightclip.training.state import save
from lightclip.training.step import train_step
from pipeline.base.progress import progress_bar
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.stream import PositionTracker, finish_images

log = logging.getLogger(__name__)


DATA_BOUND = 0.1  # above this share of loop time spent waiting for batches, the summary says so


@dataclass
class TrainResult:
    """The final checkpoint of a run, its folder, the last step and the last logged metrics."""

    checkpoint: Path
    run_dir: Path
    step: int
    last_metrics: dict[str, Any] = field(default_factory=dict)
    data_wait_fraction: float | None = None  # of this run's loop time, blocked on the loader


def train(cfg: TrainConfig) -> TrainResult:
    """Train from ``cfg``; returns the final checkpoint (also when the run was already done)."""
    check_train_config(cfg)
    info = setup_distributed(cfg.run)
    try:
        return _train(cfg, info)
    finally:
        end_distributed()


def _train(cfg: TrainConfig, info: DistInfo) -> TrainResult:
    with StopSignals() as stop:  # a signal during start-up stops after the first step
        session = prepare_session(cfg, info)
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


def run_eval_hook(parts: Parts, cfg: TrainConfig, info: DistInfo, tokenizer: CaptionTokenizer) -> dict[str, float]:
    """Zero-shot evaluation on the main rank; metrics flattened as ``eval/<dataset>/<metric>``."""
    flat: dict[str, float] = {}
    if info.is_main:
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
