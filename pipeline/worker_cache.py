"""Per-worker start-up, paid once per Dask worker process and off the tasks' path.

A download task needs img2dataset, whose import pulls torch, webdataset and albumentations
(seconds of CPU); an augmentation task needs WordNet, the tagger and the frequency and
inflection tables. Both are cached per process (imports by Python, augmenters by
:func:`pipeline.augment_text.augmenters`), so a worker pays each once, not once per task.
:class:`Preload` imports img2dataset as a worker joins, before its first task. When every
worker will run augmentation tasks (at least as many input partitions as workers, one
augmentation task each), it builds the augmenters there too.
"""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin

from pipeline.augment_text import AugmentConfig
from pipeline.startup import STARTUP, img2dataset_downloader

PLUGIN_NAME = "pipeline-preload"


def preload(augment: AugmentConfig | None = None) -> None:
    """Import img2dataset's downloader (and build the augmenters when ``augment`` is given),
    holding :data:`pipeline.startup.STARTUP` throughout so that tasks wait for it."""
    with STARTUP:
        import pipeline.download  # noqa: F401 - its module-level imports, once

        img2dataset_downloader()
        if augment is not None:
            from pipeline.augment_text import augmenters

            augmenters(augment)


class Preload(WorkerPlugin):
    """Dask worker plugin: runs :func:`preload` when a worker starts, before its first task.

    Not in a background thread: CPython 3.11 can fail two threads that parse code at once
    (``SystemError: AST constructor recursion depth mismatch`` in a pydantic import while the
    worker imports dask.array), leaving img2dataset's imports half done for every later task."""

    name = PLUGIN_NAME

    def __init__(self, augment: AugmentConfig | None = None) -> None:
        self.augment = augment

    def setup(self, worker: Any = None) -> None:
        preload(self.augment)


def needs_augmenters(augment: AugmentConfig, partitions: int, workers: int) -> bool:
    """Build augmenters on every worker only when every worker will get augmentation tasks."""
    return augment.variants > 0 and partitions >= max(workers, 1)


def register(client: Any, augment: AugmentConfig, partitions: int) -> None:
    """Install :class:`Preload` on every current and future worker of ``client``."""
    workers = len(client.scheduler_info()["workers"])
    preload_augment = augment if needs_augmenters(augment, partitions, workers) else None
    client.register_plugin(Preload(preload_augment), name=PLUGIN_NAME)
