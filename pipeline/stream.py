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
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline.base import shards
from pipeline.base.augment_image import (
    MoCoConfig,
    SplitSample,
    eval_transform,
    moco_transform,
    sample_seed,
    split_worker_transform,
)
from pipeline.base.photometric import apply_photometric
from pipeline.base.streamconfig import StreamConfig
from pipeline.base.tarsafe import BAD_KEY, TarLimits, check_limits, read_samples
from pipeline.base.tokenizer import CaptionTokenizer

log = logging.getLogger(__name__)

IMAGE_KEYS = ("jpg", "png", "jpeg", "webp")


class Batch(NamedTuple):
    """One batch. ``images``: float (B, 3, S, S), or uint8 when ``params`` holds the
    photometric parameters still to apply on the device (split MoCo path, see
    :func:`finish_images`); ``tokens``: int64 (B, L); ``position``: the reader's position."""

    images: torch.Tensor
    tokens: torch.Tensor
    params: torch.Tensor | None
    position: dict[str, int]


# --- shard lists and epoch size ---------------------------------------------------------------


def expand_shards(spec: str, allow_pipe: bool = False) -> list[str]:
    """Shard paths of ``spec``: brace patterns joined by ``::``, or folders (see :mod:`pipeline.base.shards`)."""
    return shards.expand_spec(spec, allow_pipe=allow_pipe)


def count_samples(urls: list[str]) -> int:
    """Total samples of ``urls`` from ``sizes.json`` (or ``manifest.json``) beside them."""
    counts = shards.expected_counts(urls)
    missing = [url for url in urls if url not in counts]
    if missing:
        raise ValueError(
            f"no sample count for {len(missing)} shard(s), e.g. {missing[0]}: put {shards.SIZES_FILE} "
            f"or {shards.MANIFEST_FILE} beside the shards, or set data.samples_per_epoch"
        )
    return sum(counts[url] for url in urls)


def fit_workers(num_shards: int, workers: int, world_size: int) -> int:
    """Loader workers per rank such that every reader (rank x worker) has a shard of its own:
    ``workers`` capped at the shard count, with a one-line note; too few shards for the ranks
    themselves is an error (a reader without shards would hang)."""
    if num_shards < world_size:
        raise ValueError(
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


def reader_quota(num_batches: int, reader: int, readers: int) -> int:
    """Batches of logical reader ``reader`` out of ``num_batches`` dealt round-robin."""
    return num_batches // readers + (1 if reader < num_batches % readers else 0)


# --- per-reader context and position -----------------------------------------------------------


@dataclass
class ReaderState:
    """Where one reader (rank, logical worker) stands within an epoch."""

    drawn: int = 0  # samples taken out of the shuffle buffer (skipped ones included)
    batches: int = 0  # batches emitted
    skipped: int = 0  # corrupt or incomplete samples dropped


@dataclass
class ReaderContext:
    """Everything a reader's stages need: identity, epoch, seed, quota, start position."""

    rank: int
    world_size: int
    worker: int
    workers: int
    epoch: int
    seed: int
    quota: int
    start: ReaderState
    state: ReaderState = field(default_factory=ReaderState)
    tar_samples: int = 0
    expected: dict[str, int] = field(default_factory=dict)  # url -> recorded sample count
    skip_budget: float = float("inf")  # skipped samples allowed this epoch
    current_url: str = ""  # the shard being read
    shard_samples: int = 0  # samples read so far from the current shard

    @property
    def where(self) -> str:
        return f"rank {self.rank} worker {self.worker}"

    @property
    def replaying(self) -> bool:
        """True while resuming re-reads samples already accounted for before the checkpoint."""
        return self.state.drawn < self.start.drawn


class DataLossError(RuntimeError):
    """More samples were lost than ``data.max_skipped_fraction`` allows."""


def check_skip_budget(ctx: ReaderContext) -> None:
    if ctx.state.skipped > ctx.skip_budget:
        raise DataLossError(
            f"{ctx.where} lost {ctx.state.skipped} samples this epoch, more than "
            f"data.max_skipped_fraction allows ({int(ctx.skip_budget)}): run `python -m pipeline verify "
            "<shard folder>` and rebuild the damaged shards, or raise data.max_skipped_fraction"
        )


class SkipCounter:
    """An error handler that logs each error, counts it and lets the stream continue.

    ``tar_level``: errors of the tar reader. Those are not counted when the current shard's
    sample count is recorded: its shortfall is (see :func:`account_shard`), so a cut shard
    counts every lost sample exactly once.
    """

    def __init__(self, ctx: ReaderContext, tar_level: bool = False):
        self.ctx = ctx
        self.tar_level = tar_level

    def __call__(self, exn: BaseException) -> bool:
        ctx = self.ctx
        if isinstance(exn, DataLossError):
            raise exn
        if ctx.replaying or (self.tar_level and ctx.current_url in ctx.expected):
            log.warning("%s: %s", ctx.where, exn)
            return True
        ctx.state.skipped += 1
        if ctx.state.skipped <= 10 or ctx.state.skipped % 100 == 0:
            log.warning("%s: skipped sample (%d so far): %s", ctx.where, ctx.state.skipped, exn)
        check_skip_budget(ctx)
        return True


def account_shard(ctx: ReaderContext, url: str) -> None:
    """After a shard was read to its end: count the samples it lacks against its recorded count."""
    expected = ctx.expected.get(url)
    if expected is None or ctx.shard_samples >= expected or ctx.replaying:
        return
    lost = expected - ctx.shard_samples
    ctx.state.skipped += lost
    log.warning(
        "%s: %s holds %d of its %d samples: %d lost (damaged shard? see `python -m pipeline verify`)",
        ctx.where,
        url,
        ctx.shard_samples,
        expected,
        lost,
    )
    check_skip_budget(ctx)


# --- stages ------------------------------------------------------------------------------------


def shard_stream(urls: list[str], ctx: ReaderContext, config: StreamConfig) -> Iterator[dict[str, str]]:
    """This reader's shards for the epoch, endless: resampled, or repeated passes over its slice."""
    rng = random.Random(f"shards:{ctx.seed}:{ctx.epoch}:{ctx.rank}:{ctx.worker}")
    if config.resampled:
        mine = list(urls)
    else:
        order = list(urls)
        if config.shard_shuffle:
            random.Random(f"shards:{ctx.seed}:{ctx.epoch}").shuffle(order)
        mine = order[ctx.rank :: ctx.world_size][ctx.worker :: ctx.workers]
    # A pass (resampled: 10 x len(urls) draws) that yields no sample ends the stream with an error.
    draws = 10 * len(mine) if config.resampled else 1
    while True:
        before = ctx.tar_samples
        passes = (rng.choice(mine) for _ in range(draws)) if config.resampled else iter(mine)
        for url in passes:
            ctx.current_url, ctx.shard_samples = url, 0
            yield {"url": url}  # resumed once the tar reader finished this shard
            account_shard(ctx, url)
        if ctx.tar_samples == before:
            raise RuntimeError(f"shards {mine[:3]}... of rank {ctx.rank} worker {ctx.worker} hold no readable samples")
        if config.shard_shuffle and not config.resampled:
            rng.shuffle(mine)


def read_shard(url: str, limits: TarLimits | None = None) -> Iterator[dict]:
    """Samples of one tar, members grouped by key, within ``limits`` (:mod:`pipeline.base.tarsafe`):
    a refused member marks its sample ``__bad__``; a read error ends the shard after yielding
    the sample it interrupted (later stages judge whether it is complete)."""
    return read_samples(url, limits or TarLimits())


def tar_samples(
    urls: Iterable[dict[str, str]], ctx: ReaderContext, handler: Callable, limits: TarLimits | None = None
) -> Iterator[dict]:
    """Every sample of every shard in ``urls``; errors go to ``handler`` and end that shard."""
    for source in urls:
        try:
            for sample in read_shard(source["url"], limits):
                ctx.tar_samples += 1
                ctx.shard_samples += 1
                yield sample
        except Exception as exn:  # noqa: BLE001 - a damaged shard is data, not a crash
            exn.args = (*exn.args, source["url"])
            handler(exn)


def shuffle_samples(samples: Iterable[dict], ctx: ReaderContext, config: StreamConfig) -> Iterator[dict]:
    """Seeded shuffle buffer: the same order for the same (seed, epoch, rank, worker)."""
    if config.shuffle_buffer <= 1:
        yield from samples
        return
    rng = random.Random(f"samples:{ctx.seed}:{ctx.epoch}:{ctx.rank}:{ctx.worker}")
    buffer: list[dict] = []
    initial = max(1, min(config.shuffle_initial, config.shuffle_buffer))
    for sample in samples:
        buffer.append(sample)
        if len(buffer) < initial:
            continue
        index = rng.randrange(len(buffer))
        buffer[index], buffer[-1] = buffer[-1], buffer[index]
        yield buffer.pop()
        initial = config.shuffle_buffer
    rng.shuffle(buffer)
    yield from buffer


def skip_drawn(samples: Iterable[dict], ctx: ReaderContext) -> Iterator[dict]:
    """Count samples drawn from the buffer; drop (undecoded) the first ``start.drawn``."""
    for sample in samples:
        ctx.state.drawn += 1
        if ctx.state.drawn > ctx.start.drawn:
            yield sample


def sample_caption(sample: dict) -> str:
    """The sample's own caption: ``.txt``, else the ``caption`` field of a ``.json`` object."""
    caption = sample["txt"].decode("utf-8") if "txt" in sample else None
    if caption is None and "json" in sample:
        meta = json.loads(sample["json"])
        caption = meta.get("caption") if isinstance(meta, dict) else None
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"sample {sample.get('__key__')} has no caption (a non-empty string)")
    return caption


def pick_caption(sample: dict, ctx: ReaderContext, variant_prob: float) -> str:
    """The caption, or with ``variant_prob`` one of its variants (seeded per epoch and key)."""
    caption = sample_caption(sample)
    if variant_prob <= 0 or "variants.json" not in sample:
        return caption
    listed = json.loads(sample["variants.json"])
    variants = [v for v in listed if isinstance(v, str) and v.strip()] if isinstance(listed, list) else []
    rng = random.Random(sample_seed(ctx.seed, ctx.epoch, f"caption:{sample['__key__']}"))
    if variants and rng.random() < variant_prob:
        return rng.choice(variants)
    return caption


def decode_image(sample: dict, max_pixels: int) -> Image.Image:
    """The sample's image as RGB; refuses images above ``max_pixels`` before decoding them."""
    data = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
    if data is None:
        raise ValueError(f"sample {sample.get('__key__')} has no image ({'/'.join(IMAGE_KEYS)})")
    image = Image.open(io.BytesIO(data))
    if image.width * image.height > max_pixels:
        raise ValueError(f"sample {sample.get('__key__')}: {image.width}x{image.height} exceeds {max_pixels} pixels")
    return image.convert("RGB")


def decode_samples(
    samples: Iterable[dict], ctx: ReaderContext, config: StreamConfig, transform: Callable
) -> Iterator[tuple[Any, str]]:
    """(transformed image, caption) per sample; failures are counted and skipped."""
    handler = SkipCounter(ctx)
    for sample in samples:
        try:
            if BAD_KEY in sample:
                raise ValueError(f"sample {sample['__key__']} in {sample.get('__url__')}: {sample[BAD_KEY]}")
            caption = pick_caption(sample, ctx, config.variant_prob if config.augment else 0.0)
            image = decode_image(sample, config.max_pixels)
            yield transform(image, key=sample["__key__"], epoch=ctx.epoch), caption
        except Exception as exn:  # noqa: BLE001 - a bad sample is data, not a crash
            handler(exn)


def batch_samples(
    items: Iterable[tuple[Any, str]], ctx: ReaderContext, tokenizer: CaptionTokenizer, batch_size: int
) -> Iterator[Batch]:
    """Stack ``batch_size`` items, tokenize their captions; stop after the reader's quota."""
    images: list[Any] = []
    captions: list[str] = []
    if ctx.state.batches >= ctx.quota:
        return
    for image, caption in items:
        images.append(image)
        captions.append(caption)
        if len(images) < batch_size:
            continue
        ctx.state.batches += 1
        yield _make_batch(images, captions, ctx, tokenizer)
        images, captions = [], []
        if ctx.state.batches >= ctx.quota:
            return


def _make_batch(images: list, captions: list[str], ctx: ReaderContext, tokenizer: CaptionTokenizer) -> Batch:
    tokens = torch.from_numpy(tokenizer.encode(captions))  # (B, L) int64
    position = {
        "epoch": ctx.epoch,
        "worker": ctx.worker,
        "drawn": ctx.state.drawn,
        "batches": ctx.state.batches,
        "skipped": ctx.state.skipped,
    }
    if isinstance(images[0], SplitSample):
        return Batch(torch.stack([i.image for i in images]), tokens, torch.stack([i.params for i in images]), position)
    return Batch(torch.stack(images), tokens, None, position)


class _Unseeded:
    """Adapts a plain ``transform(image)`` to the ``(image, key=, epoch=)`` stage signature."""

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, image: Image.Image, key: str | None = None, epoch: int = 0) -> Any:
        return self.transform(image)


def default_transform(config: StreamConfig, seed: int) -> Callable:
    """The image stage: seeded MoCo-v2 (split or per-sample) or the eval transform."""
    if not config.augment:
        return _Unseeded(eval_transform(config.image.size))
    if config.image.split:
        return split_worker_transform(config.image, seed)
    return moco_transform(config.image, seed)


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
            generator=torch.Generator().manual_seed(epoch),
        )
        return _one_line_data_loss(iter(loader))


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
        raise ValueError(
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
