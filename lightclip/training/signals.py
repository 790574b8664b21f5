"""Stopping on SIGINT/SIGTERM: a flag read after each step (the run then saves and stops)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from lightclip.training.runtime import DistInfo, any_rank


class TrainingInterrupted(Exception):
    """A stop signal arrived; the run saved ``checkpoint`` at ``step`` (rerun to resume)."""

    def __init__(self, step: int, signum: int, checkpoint: Path | None, is_main: bool = True):
        super().__init__(f"stopped at step {step}; rerun the same command to resume")
        self.step, self.signum, self.checkpoint, self.is_main = step, signum, checkpoint, is_main


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
