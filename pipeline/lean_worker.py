"""Keeps torch out of the build's own Dask worker processes (a LocalCluster ``preload``).

A build worker downloads, augments captions and writes tar files; it never needs torch, yet
importing img2dataset pulls it in through webdataset, and nlpaug tries it too. Both treat a
missing torch as "not installed" and take their torch-free paths, with the same output. Refusing
the import saves each worker about 2 s at start-up and most of its exit (finalising torch).
Only for processes this package starts: never in the caller's process or a user's cluster.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

REFUSED = "torch"


class RefuseTorch(importlib.abc.MetaPathFinder):
    """Import hook: ``torch`` and its submodules raise ``ModuleNotFoundError``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == REFUSED or name.startswith(REFUSED + "."):
            raise ModuleNotFoundError(f"No module named {name!r} (refused in build workers)", name=name)
        return None


def refuse_torch() -> bool:
    """Install the hook in this process unless torch is already loaded; True when installed."""
    if REFUSED in sys.modules or any(isinstance(f, RefuseTorch) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, RefuseTorch())
    return True


def dask_setup(worker: Any = None) -> None:
    """Dask's preload entry point, run in each worker process as it starts."""
    refuse_torch()
