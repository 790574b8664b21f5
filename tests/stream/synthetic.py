"""Small synthetic shards in the pipeline's layout: coloured shapes captioned by colour and shape."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

from PIL import Image, ImageDraw

from pipeline.base import shards
from pipeline.base.tokenizer import TOKENIZER_FILE, CaptionTokenizer, train_tokenizer

COLOURS = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")
CLASSES = [(c, s) for c in COLOURS for s in SHAPES]


def draw_shape(colour: str, shape: str, rng: random.Random, size: int = 48) -> Image.Image:
    """A shape of one colour on a light grey background, random position and scale."""
    image = Image.new("RGB", (size, size), (200, 200, 200))
    draw = ImageDraw.Draw(image)
    r = rng.randint(size // 4, size // 3)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, counts: list[int], seed: int = 0, variants: bool = True) -> list[Path]:
    """Shards ``00000.tar``... with ``counts[i]`` samples each, ``sizes.json`` and ``manifest.json``,
    written by :mod:`pipeline.base.shards` (the same names and fields as a real build)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    infos = [
        shards.write_shard(folder, index, _samples(index, count, rng, variants)) for index, count in enumerate(counts)
    ]
    shards.write_manifest(folder, infos, {})
    write_tokenizer(folder)
    return [folder / info.name for info in infos]


def _samples(shard: int, count: int, rng: random.Random, variants: bool):
    for i in range(count):
        key = f"{shard:05d}{i:04d}"
        colour, shape = rng.choice(CLASSES)
        caption = f"a {colour} {shape}"
        meta = {"url": f"http://example.invalid/{key}.jpg", "width": 48, "height": 48, "caption": caption}
        alts = [f"{colour} {shape}", f"a picture of a {colour} {shape}"] if variants else []
        yield shards.Sample(key, jpeg(draw_shape(colour, shape, rng)), caption, meta, alts)


def write_tokenizer(folder: Path) -> Path:
    texts = [f"a picture of a {c} {s}" for c, s in CLASSES] * 20 + ["a photo of the", "picture"] * 5
    path = folder / TOKENIZER_FILE
    CaptionTokenizer(train_tokenizer(texts, vocab_size=300, min_frequency=1), 16).save(path)
    return path
