"""Shards for the end-to-end training row of ``bench_gpu.py``: real JPEGs and captions whose
token counts spread like the synthetic batches' (8-40), so that the text tower does the same
work in both rows. Written by ``pipeline.base.shards`` (one process per shard), with a tokenizer.
"""

from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.base.shards import Sample, ShardInfo, write_manifest, write_shard
from pipeline.base.tokenizer import TOKENIZER_FILE, CaptionTokenizer, train_tokenizer

WORDS = (
    "a photo of the small red blue green dog cat bird car tree house on in near under with "
    "two three old new bright dark wooden metal street field river sky at night day"
).split()


@dataclass(frozen=True)
class ShardPlan:
    """``shards`` shards of ``per_shard`` JPEGs, ``side`` px square (the loader crops them)."""

    shards: int
    per_shard: int
    side: int
    context_length: int
    vocab_size: int


def caption(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(6, 36))))


def jpeg(rng: np.random.Generator, side: int) -> bytes:
    """Smooth random colours (noise at 1/8 scale, upsampled), as compressible as a photo."""
    small = rng.integers(0, 255, (max(1, side // 8), max(1, side // 8), 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((side, side), Image.BILINEAR).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_one(folder: Path, index: int, plan: ShardPlan) -> ShardInfo:
    rng = np.random.default_rng(index)
    samples = (Sample(f"{index:05d}{i:05d}", jpeg(rng, plan.side), caption(rng), {}, []) for i in range(plan.per_shard))
    return write_shard(folder, index, samples)


def write_caption_shards(folder: Path, plan: ShardPlan, processes: int) -> None:
    """The shards, ``manifest.json`` and ``tokenizer.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max(1, processes)) as pool:
        infos = list(pool.map(write_one, [folder] * plan.shards, range(plan.shards), [plan] * plan.shards))
    write_manifest(folder, infos, {"tokenizer": TOKENIZER_FILE})
    rng = np.random.default_rng(0)
    texts = [caption(rng) for _ in range(500)]
    CaptionTokenizer(train_tokenizer(texts, plan.vocab_size, 1), plan.context_length).save(folder / TOKENIZER_FILE)
