"""The loader's stages, each a module-level iterator function so that a test can run any
prefix: shard stream -> tar samples -> seeded shuffle -> skip (resume) -> decode and transform
-> batch and tokenize. A bad sample is counted and skipped (:class:`SkipCounter`), not raised."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import torch
from PIL import Image

from pipeline.base.augment_image import SplitSample, eval_transform, moco_transform, sample_seed, split_worker_transform
from pipeline.base.streamconfig import StreamConfig
from pipeline.base.tarsafe import BAD_KEY, TarLimits, read_samples
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.stream_reader import ReaderContext, SkipCounter, account_shard

IMAGE_KEYS = ("jpg", "png", "jpeg", "webp")


class Batch(NamedTuple):
    """One batch. ``images``: float (B, 3, S, S), or uint8 when ``params`` holds the
    photometric parameters still to apply on the device (split MoCo path, see
    :func:`finish_images`); ``tokens``: int64 (B, L); ``position``: the reader's position."""

    images: torch.Tensor
    tokens: torch.Tensor
    params: torch.Tensor | None
    position: dict[str, int]


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
