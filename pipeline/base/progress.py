"""Progress bars that suit both a terminal and a log file.

On a terminal :func:`progress_bar` is a plain ``tqdm`` bar. When the output is not a terminal
(``make demo > log``, a batch job) carriage-return frames would pile up in the file, so the bar
writes one whole line at most every ``every_s`` seconds, and the final state when it closes.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

EVERY_S = 30.0
ENV_EVERY_S = "PROGRESS_EVERY_S"  # overrides the log-line interval


class LineBar(tqdm):
    """A tqdm bar that writes ``str(bar)`` as a line, at most every ``interval`` seconds."""

    def __init__(self, *args: Any, interval: float = EVERY_S, **kwargs: Any):
        self.interval, self.last_line, self.last_n = interval, -math.inf, None
        kwargs.update(mininterval=interval, leave=False)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        now = time.monotonic()
        if msg == "" or now - self.last_line < self.interval:
            return False
        self.last_line, self.last_n = now, self.n
        self.fp.write(f"{self if msg is None else msg}\n")
        self.fp.flush()
        return True

    def close(self) -> None:
        if not self.disable and self.n != self.last_n:
            self.last_line = -math.inf
            self.display()
        super().close()


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def log_interval() -> float:
    """Seconds between log lines: ``$PROGRESS_EVERY_S``, else :data:`EVERY_S`."""
    try:
        return max(0.0, float(os.environ.get(ENV_EVERY_S, EVERY_S)))
    except ValueError:
        return EVERY_S


def progress_bar(iterable: Iterable | None = None, *, file: IO[str] | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal, a :class:`LineBar` otherwise."""
    stream = file if file is not None else sys.stderr
    if is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    return LineBar(iterable, file=stream, interval=log_interval(), **kwargs)
