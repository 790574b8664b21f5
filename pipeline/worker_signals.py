"""A LocalCluster ``preload``: the build's worker processes ignore SIGINT.

A terminal's Ctrl-C reaches every process of its group; the build's own process stops the
cluster in order (and prints one line), so a worker that also raised ``KeyboardInterrupt``
would only add a traceback. Only for processes this package starts, never a user's cluster.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def ignore_interrupts() -> bool:
    """SIGINT ignored in this process; False when not on the main thread (nothing changed)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return True


def dask_setup(worker: Any = None) -> None:
    """Dask's preload entry point, run in each worker process as it starts."""
    ignore_interrupts()
