"""A synthetic image-text world: coloured shapes on textured backgrounds, with captions.

Used by the offline demo and by tests that need real images and matching captions without a
network. Everything is a pure function of :class:`WorldConfig` (the seed included): the same
config writes the same bytes. :func:`generate_world` writes

- ``train/images/NNNNNN.jpg`` and ``train/captions.jsonl`` (path, caption, attributes, and
  ``noisy``: the share ``noise_fraction`` of captions that describe another scene, as web
  captions often do); :func:`write_metadata` turns it into a ``url, caption`` parquet file
  once the URL of the server that serves ``train/`` is known;
- ``zeroshot/<class>/NNNNNN.jpg``: a held-out ImageFolder, one folder per colour-shape class
  (folder names are the class names with spaces, e.g. ``red circle``), and
  ``zeroshot/templates.txt``, its prompt templates;
- ``retrieval/images/`` and ``retrieval/dataset_world.json``: a Karpathy-style split (every
  image in ``test``, ``captions_per_image`` phrasings each).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

# Canonical colour -> (RGB, words a caption may use for it). Hues are far apart so that a
# moderate hue jitter in the image augmentation does not turn one colour into another.
COLOURS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "red": ((215, 35, 35), ("red", "crimson", "scarlet")),
    "yellow": ((240, 215, 40), ("yellow", "golden")),
    "green": ((40, 165, 55), ("green", "emerald")),
    "blue": ((35, 70, 215), ("blue", "cobalt")),
    "purple": ((140, 45, 180), ("purple", "violet")),
    "white": ((245, 245, 245), ("white", "snow-white")),
}
SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round dot"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "star": ("star", "five-pointed star"),
    "ring": ("ring", "hoop", "donut"),
}
BACKGROUNDS = ("plain", "striped", "checkered", "dotted", "noisy")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "centre")

# Zero-shot prompt templates ("{c}" is the class name), written to ``zeroshot/templates.txt``.
PROMPTS = ("a {c}", "a photo of a {c}", "a picture showing a {c}", "a {c} on a background")

TEMPLATES = (
    "a {colour} {shape}",
    "a {size} {colour} {shape} on a {background} background",
    "photo of a {size} {colour} {shape}",
    "a picture showing a {colour} {shape}",
    "{colour} {shape} on a {background} backdrop",
    "there is a {colour} {shape} near the {position}",
    "a {shape} painted {colour}",
    "close-up of a {colour} {shape}, {background} background",
    "a {size} {shape} in {colour}",
    "my photo of a {colour} {shape} in the {position}",
)


@dataclass
class WorldConfig:
    """Sizes and knobs of the world; ``seed`` fixes every pixel and word."""

    seed: int = 0
    image_size: int = 64
    train_samples: int = 4000
    zeroshot_per_class: int = 20
    retrieval_images: int = 200
    captions_per_image: int = 5
    noise_fraction: float = 0.05
    small_size: tuple[float, float] = (0.45, 0.6)  # shape side as a fraction of the image
    large_size: tuple[float, float] = (0.65, 0.85)
    jpeg_quality: int = 90
    colours: tuple[str, ...] = tuple(COLOURS)
    shapes: tuple[str, ...] = tuple(SHAPES)
    backgrounds: tuple[str, ...] = BACKGROUNDS


@dataclass
class Scene:
    """What one image shows; ``box`` is the shape's bounding box (x0, y0, x1, y1) in pixels."""

    colour: str
    shape: str
    size: str
    background: str
    position: str
    box: tuple[int, int, int, int]
    background_rgb: tuple[tuple[int, int, int], tuple[int, int, int]] = field(
        default=((0, 0, 0),) * 2
    )

    @property
    def label(self) -> str:
        """The zero-shot class name (colour and shape)."""
        return f"{self.colour} {self.shape}"


def class_names(config: WorldConfig) -> list[str]:
    """Zero-shot class names in ImageFolder order (sorted folder names)."""
    return sorted(f"{c} {s}" for c in config.colours for s in config.shapes)


def _check(config: WorldConfig) -> None:
    unknown = [c for c in config.colours if c not in COLOURS] + [
        s for s in config.shapes if s not in SHAPES
    ]
    unknown += [b for b in config.backgrounds if b not in BACKGROUNDS]
    if unknown:
        raise ValueError(
            f"unknown world names {unknown}; colours {list(COLOURS)}, shapes {list(SHAPES)}, "
            f"backgrounds {list(BACKGROUNDS)}"
        )
    if not 0 <= config.noise_fraction < 1:
        raise ValueError(f"noise_fraction {config.noise_fraction} must lie in [0, 1)")


def _rng(config: WorldConfig, split: str, index: int) -> np.random.Generator:
    split_id = {"train": 0, "zeroshot": 1, "retrieval": 2}[split]
    return np.random.default_rng([config.seed, split_id, index])


def sample_scene(
    config: WorldConfig,
    rng: np.random.Generator,
    colour: str | None = None,
    shape: str | None = None,
) -> Scene:
    """Draw a scene; ``colour``/``shape`` pin the class (zero-shot set)."""
    colour = colour or str(rng.choice(config.colours))
    shape = shape or str(rng.choice(config.shapes))
    size = str(rng.choice(["small", "large"]))
    background = str(rng.choice(config.backgrounds))
    n = config.image_size
    side = int(round(n * rng.uniform(*(config.small_size if size == "small" else config.large_size))))
    free = n - side
    x0, y0 = (int(v) for v in rng.integers(0, free + 1, size=2))
    cx, cy = (x0 + side / 2) / n, (y0 + side / 2) / n
    if abs(cx - 0.5) < 0.12 and abs(cy - 0.5) < 0.12:
        position = "centre"
    else:
        position = ("top " if cy < 0.5 else "bottom ") + ("left" if cx < 0.5 else "right")
    # Muted backgrounds, darker than any shape's "white", so that colour names stay unambiguous.
    base = rng.integers(60, 126)
    tint = rng.integers(-15, 16, size=3)
    dark = tuple(int(np.clip(base + t, 0, 255)) for t in tint)
    light = tuple(int(np.clip(v + rng.integers(20, 41), 0, 255)) for v in dark)
    return Scene(
        colour, shape, size, background, position, (x0, y0, x0 + side, y0 + side), (dark, light)
    )


def _background(scene: Scene, n: int, rng: np.random.Generator) -> Image.Image:
    dark, light = (np.array(c, dtype=np.float32) for c in scene.background_rgb)
    yy, xx = np.mgrid[0:n, 0:n]
    kind = scene.background
    if kind == "striped":
        period = int(rng.integers(6, 12))
        pattern = ((xx + yy * int(rng.integers(0, 2))) // (period // 2)) % 2
    elif kind == "checkered":
        cell = int(rng.integers(5, 10))
        pattern = ((xx // cell) + (yy // cell)) % 2
    elif kind == "dotted":
        step = int(rng.integers(7, 11))
        pattern = (((xx % step) - step // 2) ** 2 + ((yy % step) - step // 2) ** 2) <= 3
    elif kind == "noisy":
        pattern = rng.random((n, n))
    else:
        pattern = np.zeros((n, n))
    pixels = dark + pattern[..., None].astype(np.float32) * (light - dark)
    pixels += rng.normal(0, 4, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def shape_mask(shape: str, box: tuple[int, int, int, int], n: int) -> Image.Image:
    """Binary ("L") mask of ``shape`` drawn in ``box`` on an n x n canvas (4x supersampled)."""
    scale = 4
    big = Image.new("L", (n * scale, n * scale), 0)
    draw = ImageDraw.Draw(big)
    x0, y0, x1, y1 = (v * scale for v in box)
    w = x1 - x0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=255)
    elif shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=255)
    elif shape == "star":
        points = []
        for k in range(10):
            radius = (w / 2) if k % 2 == 0 else (w / 2) * 0.42
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=255)
    elif shape == "ring":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=255)
        inset = 0.27 * w
        draw.ellipse((x0 + inset, y0 + inset, x1 - 1 - inset, y1 - 1 - inset), fill=0)
    else:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {list(SHAPES)}")
    return big.resize((n, n), Image.Resampling.BOX)


def render(scene: Scene, n: int, rng: np.random.Generator) -> Image.Image:
    """The scene as an RGB image: textured background, then the shape in its colour."""
    image = _background(scene, n, rng)
    rgb = np.array(COLOURS[scene.colour][0], dtype=np.float32)
    shade = rgb * rng.uniform(0.9, 1.0) + rng.normal(0, 3, size=(n, n, 3))
    fill = Image.fromarray(np.clip(shade, 0, 255).astype(np.uint8), "RGB")
    image.paste(fill, (0, 0), shape_mask(scene.shape, scene.box, n))
    return image


def describe(scene: Scene, rng: np.random.Generator, template: int | None = None) -> str:
    """A caption of ``scene`` in one of several phrasings, with colour/shape synonyms."""
    index = int(rng.integers(len(TEMPLATES))) if template is None else template % len(TEMPLATES)
    return TEMPLATES[index].format(
        colour=str(rng.choice(COLOURS[scene.colour][1])),
        shape=str(rng.choice(SHAPES[scene.shape])),
        size=scene.size,
        background=scene.background,
        position=scene.position,
    )


def canonical_colour(word: str) -> str | None:
    """Canonical colour named by a caption word (synonyms included), or None."""
    return next((name for name, (_, words) in COLOURS.items() if word in words), None)


def parse_caption(caption: str) -> tuple[str | None, str | None]:
    """(canonical colour, canonical shape) named in a caption of this world, None if absent."""
    colour = next(
        (c for c, (_, words) in COLOURS.items() for w in words if f" {w} " in f" {caption} "), None
    )
    shape = next(
        (s for s, words in SHAPES.items() for w in words if f" {w}" in f" {caption}"), None
    )
    return colour, shape


def _save(image: Image.Image, path: Path, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=quality)


def _train_rows(config: WorldConfig, root: Path) -> Iterator[dict]:
    noise = (
        np.random.default_rng([config.seed, 9]).random(config.train_samples) < config.noise_fraction
    )
    for index in range(config.train_samples):
        rng = _rng(config, "train", index)
        scene = sample_scene(config, rng)
        _save(
            render(scene, config.image_size, rng),
            root / "train" / "images" / f"{index:06d}.jpg",
            config.jpeg_quality,
        )
        described = scene
        if noise[index]:  # a caption written for another scene: web noise
            while described.label == scene.label:
                described = sample_scene(config, rng)
        yield {
            "path": f"images/{index:06d}.jpg",
            "caption": describe(described, rng),
            "noisy": bool(noise[index]),
            **_attributes(scene),
        }


def _attributes(scene: Scene) -> dict:
    row = asdict(scene)
    row.pop("background_rgb")
    row["box"] = list(scene.box)
    return row


def _write_zeroshot(config: WorldConfig, root: Path) -> int:
    count = 0
    for label in class_names(config):
        colour, shape = label.split(" ")
        for _ in range(config.zeroshot_per_class):
            rng = _rng(config, "zeroshot", count)
            scene = sample_scene(config, rng, colour=colour, shape=shape)
            _save(
                render(scene, config.image_size, rng),
                root / "zeroshot" / label / f"{count:06d}.jpg",
                config.jpeg_quality,
            )
            count += 1
    (root / "zeroshot" / "templates.txt").write_text("".join(p + "\n" for p in PROMPTS))
    return count


def _write_retrieval(config: WorldConfig, root: Path) -> int:
    images = []
    for index in range(config.retrieval_images):
        rng = _rng(config, "retrieval", index)
        scene = sample_scene(config, rng)
        name = f"{index:06d}.jpg"
        _save(
            render(scene, config.image_size, rng),
            root / "retrieval" / "images" / name,
            config.jpeg_quality,
        )
        # Distinct phrasings per image (templates in order from a random start).
        start = int(rng.integers(len(TEMPLATES)))
        raws = [describe(scene, rng, start + k) for k in range(config.captions_per_image)]
        images.append(
            {
                "filepath": "images",
                "filename": name,
                "imgid": index,
                "split": "test",
                "sentences": [{"raw": raw, "tokens": raw.split()} for raw in raws],
            }
        )
    payload = {"dataset": "world", "images": images}
    (root / "retrieval" / "dataset_world.json").write_text(json.dumps(payload, indent=1))
    return len(images)


def generate_world(config: WorldConfig, root: str | Path) -> dict:
    """Write the world under ``root`` (see the module docstring); return its summary."""
    _check(config)
    root = Path(root)
    rows = list(_train_rows(config, root))
    with (root / "train" / "captions.jsonl").open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    summary = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "train_samples": len(rows),
        "noisy_captions": sum(row["noisy"] for row in rows),
        "zeroshot_images": _write_zeroshot(config, root),
        "zeroshot_classes": len(class_names(config)),
        "retrieval_images": _write_retrieval(config, root),
    }
    (root / "world.json").write_text(json.dumps(summary, indent=1))
    return summary


def read_captions(root: str | Path) -> pd.DataFrame:
    """The training rows written by :func:`generate_world`."""
    return pd.read_json(Path(root) / "train" / "captions.jsonl", lines=True)


def write_metadata(root: str | Path, base_url: str, path: str | Path | None = None) -> Path:
    """Write ``url, caption`` rows (parquet) for a server that serves ``root/train`` at
    ``base_url``; returns the file's path (default ``root/metadata.parquet``)."""
    rows = read_captions(root)
    table = pd.DataFrame(
        {"url": base_url.rstrip("/") + "/" + rows["path"], "caption": rows["caption"]}
    )
    path = Path(path) if path else Path(root) / "metadata.parquet"
    table.to_parquet(path, index=False)
    return path
