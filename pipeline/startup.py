"""The heavy start-up a worker process pays once, one thread at a time.

Importing img2dataset (which pulls wandb, torch, webdataset, albumentations) and building the
caption augmenters (WordNet, the tagger) take seconds. Two threads that run them at once in the
same process can see half-initialised modules (``partially initialized module 'wandb' has no
attribute 'errors'``): every such step runs under :data:`STARTUP`, so a task that arrives
while another thread pays the start-up waits for it and then finds everything cached.
"""

from __future__ import annotations

import threading
from types import ModuleType

STARTUP = threading.RLock()


def img2dataset_downloader() -> ModuleType:
    """``img2dataset.downloader``, imported once per process under :data:`STARTUP`."""
    with STARTUP:
        import img2dataset.downloader as downloader

    return downloader
