"""What a run reports: one ``metrics.jsonl`` line (and TensorBoard scalars) per log step, the
time spent waiting for batches, and trimming the log back to a resumed step."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lightclip.checkpoint import run_metrics
from lightclip.training.runtime import global_sum
from pipeline.stream import PositionTracker

if TYPE_CHECKING:
    from lightclip.training.session import Session
    from lightclip.training.step import StepResult

log = logging.getLogger(__name__)
T = TypeVar("T")


class MetricsLogger:
    """JSON lines in ``metrics.jsonl`` and, optionally, TensorBoard scalars (main rank only)."""

    def __init__(self, run_dir: Path, tensorboard: bool, enabled: bool):
        self.enabled = enabled
        self.path = run_metrics(run_dir)
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # about 1 s to import: only when asked for

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
