"""Per-sample failures of an evaluation set: counted and skipped up to a limit, never a crash.

:class:`SkipBad` turns a sample that cannot be read into a :class:`BadSample` (its reason),
:class:`Collate` keeps those out of the batch, and :func:`good_batches` counts them and stops
the set with one line past ``eval.max_bad_samples``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from numbers import Integral

from torch.utils.data import Dataset

log = logging.getLogger(__name__)


class SkipBad(Dataset):
    """``dataset`` whose unreadable samples (a corrupt image, a label that is no class id)
    come out as a :class:`BadSample` (the reason), to be counted, not raised."""

    def __init__(self, dataset: Dataset, num_classes: int = 0):
        self.dataset, self.num_classes = dataset, num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            sample = self.dataset[index]
        except Exception as err:  # noqa: BLE001 - any decoder error is one bad sample
            return BadSample(f"sample {index}: {type(err).__name__}: {str(err)[:200]}")
        label = sample[1]
        if self.num_classes and not (isinstance(label, Integral) and 0 <= label < self.num_classes):
            return BadSample(f"sample {index}: label {str(label)[:30]} is not a class id 0..{self.num_classes - 1}")
        return sample


class BadSample(str):
    """Why a sample could not be read."""


class Collate:
    """Collates the good samples of a batch; returns (collated, reasons of the bad ones)."""

    def __init__(self, collate: Callable):
        self.collate = collate

    def __call__(self, batch: list):
        good = [s for s in batch if not isinstance(s, BadSample)]
        bad = [str(s) for s in batch if isinstance(s, BadSample)]
        return (self.collate(good) if good else None), bad


def good_batches(loader: Iterable, name: str, limit: int) -> Iterator:
    """The collated good samples of each ``(batch, reasons)`` from ``loader``; more than
    ``limit`` bad samples raise :class:`DatasetUnreadable` naming the first reason."""
    count, first = 0, ""
    for batch, bad in loader:
        count, first = count + len(bad), first or (bad[0] if bad else "")
        if count > limit:
            raise DatasetUnreadable(
                f"{name}: {count} unreadable samples, more than eval.max_bad_samples={limit}; first: {first}"
            )
        if batch is not None:
            yield batch
    if count:
        log.warning("%s: %d unreadable sample(s) skipped; first: %s", name, count, first)


class DatasetUnreadable(ValueError):
    """Too many samples of a set could not be read."""
