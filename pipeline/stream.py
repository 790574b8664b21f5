"""Streaming WebDataset loader for CLIP training: shards -> augmented images + token ids.

Knows nothing of models. Stages (each a module-level iterator function, so a test can run any
prefix): shard stream (epoch shuffle, split by rank and worker, or resampled) -> tar to
samples (counted per shard against sizes.json/manifest.json) -> seeded sample shuffle -> skip (resume) -> decode
with a pixel limit, pick a caption variant, image transform -> batch and tokenize.

Every rank and worker gets the same number of full batches per epoch: a reader whose shards
run out starts another pass over them, and each reader stops after its quota of batches.

Exact mid-epoch resume: every random choice is seeded from (seed, epoch, rank, worker) or
(seed, epoch, sample key), and each batch carries its reader's position (samples drawn from the
shuffle buffer, batches emitted, samples skipped). Resuming re-reads the tar bytes up to that
position and discards them without decoding or augmenting (cheap: I/O only), so the batches
that follow are identical to the ones an uninterrupted run would have seen.

Here: the epoch size, the dataset, the loader and its position tracker. The stages are in
:mod:`pipeline.stream_stages`, a reader's context and its count of lost samples in
:mod:`pipeline.stream_reader`; their public names are importable from this module too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline.base import shards
from pipeline.base.augment_image import MoCoConfig
from pipeline.base.configs import ConfigError
from pipeline.base.photometric import apply_photometric
from pipeline.base.streamconfig import StreamConfig
from pipeline.base.tarsafe import check_limits
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.stream_reader import (
    DataLossError,
    ReaderContext,
    ReaderState,
    SkipCounter,
    account_shard,
    check_skip_budget,
    reader_quota,
)
from pipeline.stream_stages import (
    IMAGE_KEYS,
    Batch,
    batch_samples,
    decode_image,
    decode_samples,
    default_transform,
    pick_caption,
    read_shard,
    sample_caption,
    shard_stream,
    shuffle_samples,
    skip_drawn,
    tar_samples,
)

__all__ = [
    "IMAGE_KEYS",
    "Batch",
    "DataLossError",
    "PositionTracker",
    "ReaderContext",
    "ReaderState",
    "SkipCounter",
    "StreamConfig",
    "StreamDataset",
    "StreamLoader",
    "pins_batches",
    "account_shard",
    "batch_samples",
    "build_loader",
    "check_skip_budget",
    "count_samples",
    "decode_image",
    "decode_samples",
    "default_transform",
    "expand_shards",
    "finish_images",
    "fit_workers",
    "pick_caption",
    "read_shard",
    "reader_quota",
    "sample_caption",
    "shard_stream",
    "shuffle_samples",
    "skip_drawn",
    "tar_samples",
]

log = logging.getLogger(__name__)


# --- shard lists and epoch size ---------------------------------------------------------------


def expand_shards(spec: str, allow_pipe: bool = False) -> list[str]:
    """Shard paths of ``spec``: brace patterns joined by ``::``, or folders (see :mod:`pipeline.base.shards`)."""
    return shards.expand_spec(spec, allow_pipe=allow_pipe)


def count_samples(urls: list[str]) -> int:
    """Total samples of ``urls`` from ``sizes.json`` (or ``manifest.json``) beside them."""
    counts = shards.expected_counts(urls)
    missing = [url for url in urls if url not in counts]
    if missing:
        raise ConfigError(
            f"no sample count for {len(missing)} shard(s), e.g. {missing[0]}: put {shards.SIZES_FILE} "
            f"or {shards.MANIFEST_FILE} beside the shards, or set data.samples_per_epoch"
        )
    return sum(counts[url] for url in urls)


def fit_workers(num_shards: int, workers: int, world_size: int) -> int:
    """Loader workers per rank such that every reader (rank x worker) has a shard of its own:
    ``workers`` capped at the shard count, with a one-line note; too few shards for the ranks
    themselves is an error (a reader without shards would hang)."""
    if num_shards < world_size:
        raise ConfigError(
            f"{num_shards} shard(s) cannot feed {world_size} rank(s): use more (smaller) shards "
            "(shards.samples_per_shard) or data.resampled=true"
        )
    fitted = min(workers, num_shards // world_size)
    if fitted < workers:
        log.warning(
            "data.workers=%d capped at %d: %d shard(s) feed at most %d reader(s) per rank",
            workers,
            fitted,
            num_shards,
            num_shards // world_size,
        )
    return fitted


# --- dataset and loader ------------------------------------------------------------------------


class StreamDataset(IterableDataset):
    """One rank's epoch of batches; each DataLoader worker is one reader.

    ``starts``: per logical worker, where the epoch resumes; ``rotation``: physical worker ``i``
    plays logical worker ``(i + rotation) % workers`` so that the DataLoader's round-robin order
    continues where it stopped.
    """

    def __init__(self, urls, config, tokenizer, batch_size, num_batches, rank, world_size, seed, transform):
        super().__init__()
        self.urls, self.config, self.tokenizer = urls, config, tokenizer
        self.batch_size, self.num_batches = batch_size, num_batches
        self.rank, self.world_size, self.seed, self.transform = rank, world_size, seed, transform
        self.epoch, self.rotation = 0, 0
        self.starts: dict[int, ReaderState] = {}
        self.expected = shards.expected_counts(urls)

    def context(self) -> ReaderContext:
        info = get_worker_info()
        workers = info.num_workers if info else 1
        worker = ((info.id if info else 0) + self.rotation) % workers
        start = self.starts.get(worker, ReaderState())
        quota = reader_quota(self.num_batches, worker, workers)
        fraction = self.config.max_skipped_fraction
        budget = fraction * quota * self.batch_size if fraction < 1 else float("inf")
        return ReaderContext(
            rank=self.rank,
            world_size=self.world_size,
            worker=worker,
            workers=workers,
            epoch=self.epoch,
            seed=self.seed,
            quota=quota,
            start=start,
            state=ReaderState(batches=start.batches, skipped=start.skipped),
            expected=self.expected,
            skip_budget=budget,
        )

    def __iter__(self) -> Iterator[Batch]:
        ctx = self.context()
        stream = shard_stream(self.urls, ctx, self.config)
        samples = tar_samples(stream, ctx, SkipCounter(ctx, tar_level=True), self.config.tar)
        samples = shuffle_samples(samples, ctx, self.config)
        items = decode_samples(skip_drawn(samples, ctx), ctx, self.config, self.transform)
        yield from batch_samples(items, ctx, self.tokenizer, self.batch_size)


class StreamLoader:
    """Per-rank loader: ``epoch(e, position)`` iterates the batches of epoch ``e``.

    ``num_batches`` per epoch is the same on every rank. ``position`` (from
    :class:`PositionTracker`) resumes mid-epoch exactly; ``requested``: the worker count before
    :func:`fit_workers` capped it (a tracker counting that many workers is understood).
    """

    def __init__(self, dataset: StreamDataset, config: StreamConfig, requested: int | None = None):
        self.dataset = dataset
        self.config = config
        self.requested = max(1, config.workers if requested is None else requested)

    @property
    def num_batches(self) -> int:
        return self.dataset.num_batches

    @property
    def workers(self) -> int:
        """Loader workers actually used (``data.workers`` capped at the shard count)."""
        return self.config.workers

    def epoch(self, epoch: int, position: dict | None = None) -> Iterator[Batch]:
        ds = self.dataset
        ds.epoch, ds.starts, ds.rotation = epoch, {}, 0
        workers = max(1, self.config.workers)
        if position and position.get("epoch") == epoch:
            if position.get("workers_total") in (workers, self.requested):
                ds.starts = {int(w): ReaderState(*v) for w, v in position["readers"].items()}
                ds.rotation = int(position["next_worker"]) % workers
            else:
                log.warning(
                    "data position was saved with %s workers, now %d: the epoch restarts",
                    position.get("workers_total"),
                    workers,
                )
        remaining = ds.num_batches - int(position["batches"]) if ds.starts else ds.num_batches
        if remaining <= 0:
            return iter(())
        loader = DataLoader(
            ds,
            batch_size=None,
            num_workers=self.config.workers,
            prefetch_factor=self.config.prefetch if self.config.workers > 0 else None,
            persistent_workers=False,
            pin_memory=pins_batches(self.config),
            generator=torch.Generator().manual_seed(epoch),
        )
        return _one_line_data_loss(iter(loader))


def pins_batches(config: StreamConfig) -> bool:
    """Whether the loader hands out page-locked batches (only where a CUDA device can use them)."""
    return config.pin_memory and torch.cuda.is_available()


def _one_line_data_loss(batches: Iterator[Batch]) -> Iterator[Batch]:
    """Re-raise a worker's :class:`DataLossError` with its own message, not the worker traceback."""
    try:
        yield from batches
    except DataLossError as err:
        last = str(err).strip().splitlines()[-1]
        raise DataLossError(last.removeprefix(f"{DataLossError.__module__}.").removeprefix("DataLossError: ")) from None


class PositionTracker:
    """Follows the batches a rank consumed; its ``state()`` resumes the epoch exactly."""

    def __init__(self, workers: int, epoch: int = 0, state: dict | None = None):
        self.workers = max(1, workers)
        self.reset(epoch)
        if state and state.get("epoch") == epoch:
            self.batches = int(state["batches"])
            self.readers = {int(w): list(v) for w, v in state["readers"].items()}
            self.next_worker = int(state["next_worker"])

    def reset(self, epoch: int) -> None:
        self.epoch, self.batches, self.next_worker = epoch, 0, 0
        self.readers: dict[int, list[int]] = {}

    def update(self, position: dict[str, int]) -> None:
        worker = int(position["worker"])
        self.readers[worker] = [int(position["drawn"]), int(position["batches"]), int(position["skipped"])]
        self.batches += 1
        self.next_worker = (worker + 1) % self.workers

    @property
    def skipped(self) -> int:
        """Samples skipped this epoch by the readers seen so far."""
        return sum(v[2] for v in self.readers.values())

    def state(self) -> dict[str, Any]:
        """Plain dict (ints, str keys) for a checkpoint."""
        return {
            "epoch": self.epoch,
            "batches": self.batches,
            "next_worker": self.next_worker,
            "workers_total": self.workers,
            "readers": {str(k): v for k, v in self.readers.items()},
        }


def build_loader(
    config: StreamConfig,
    tokenizer: CaptionTokenizer,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    transform: Callable | None = None,
    multiple_of: int = 1,
) -> StreamLoader:
    """A rank's loader. ``batch_size`` is per rank; the epoch has
    ``samples_per_epoch // (batch_size * world_size)`` batches (rounded down to ``multiple_of``).
    ``transform(image, key=, epoch=)`` replaces the image stage (default: :func:`default_transform`).
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    check_limits(config.tar)
    urls = expand_shards(config.shards, config.allow_pipe)
    requested = config.workers
    if not config.resampled:
        config = replace(config, workers=fit_workers(len(urls), config.workers, world_size))
    samples = config.samples_per_epoch or count_samples(urls)
    num_batches = samples // (batch_size * world_size)
    num_batches -= num_batches % max(1, multiple_of)
    if num_batches <= 0:
        raise ConfigError(
            f"{samples} samples per epoch do not fill one batch of {batch_size} x {world_size} "
            f"rank(s){f' x {multiple_of} accumulation steps' if multiple_of > 1 else ''}: lower the batch size"
        )
    transform = transform or default_transform(config, seed)
    dataset = StreamDataset(urls, config, tokenizer, batch_size, num_batches, rank, world_size, seed, transform)
    return StreamLoader(dataset, config, requested)


def finish_images(batch: Batch, config: MoCoConfig, device: torch.device | str) -> torch.Tensor:
    """Float (B, 3, S, S) images on ``device``: applies the split path's photometric stage."""
    images = batch.images.to(device, non_blocking=True)
    if batch.params is None:
        return images
    return apply_photometric(images, batch.params, config)
