"""Start-up of the build's own Dask worker processes (a LocalCluster ``preload``): no torch or
scipy.stats, img2dataset imported in the background.

A build worker downloads, augments captions and writes tar files; it never needs torch, yet
importing img2dataset pulls it in through webdataset, and nlpaug tries it too. Both treat a
missing torch as "not installed" and take their torch-free paths, with the same output. Refusing
the import saves each worker about 2 s at start-up and most of its exit (finalising torch).
Likewise NLTK imports scipy.stats (half a second) only for collocation statistics, which it
replaces by a stub when scipy is missing; caption augmentation never computes them.
The import of img2dataset itself (seconds) starts on a background thread as the worker comes
up, so it overlaps the cluster's start and the filter and dedup tasks instead of delaying the
first download (which waits for it under :data:`pipeline.startup.STARTUP`). Only for processes
this package starts: never in the caller's process or a user's cluster.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from typing import Any

REFUSED = ("torch", "scipy.stats")


def refused(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in REFUSED)


class RefuseImports(importlib.abc.MetaPathFinder):
    """Import hook: the :data:`REFUSED` packages and their submodules raise ``ModuleNotFoundError``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if refused(name):
            raise ModuleNotFoundError(f"No module named {name!r} (refused in build workers)", name=name)
        return None


def refuse_imports() -> bool:
    """Install the hook in this process unless a refused package is already loaded (then this
    process uses it, and nothing changes); True when installed."""
    if any(refused(name) for name in sys.modules) or any(isinstance(f, RefuseImports) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, RefuseImports())
    return True


def warm_img2dataset() -> threading.Thread:
    """Import img2dataset's downloader on a daemon thread (under the start-up lock)."""
    from pipeline.startup import img2dataset_downloader

    thread = threading.Thread(target=img2dataset_downloader, name="warm-img2dataset", daemon=True)
    thread.start()
    return thread


def dask_setup(worker: Any = None) -> None:
    """Dask's preload entry point, run in each worker process as it starts."""
    refuse_imports()
    warm_img2dataset()
