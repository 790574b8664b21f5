"""A synthetic image-text world: coloured shapes on textured backgrounds, with captions.

Used by the offline demo and by tests that need real images and matching captions without a
network. Everything is a pure function of :class:`WorldConfig` (the seed included): the same
config writes the same bytes. The classic world (the defaults) shows one shape per image and
captions it in ten phrasings; a scene world (``max_objects: 2``, ``caption_style: scene``, e.g.
``recipes/data/world_scenes.yaml``) shows 1..max_objects non-overlapping shapes, also on
procedural textures (grass, sand, sky, stone, night), and its captions name one or both shapes
with their background, sometimes with sizes and positions ("a small aqua plus sign to the left
of a golden disc on the sand"); its rows also list ``objects`` and the classes ``named``.
``distractors: [min, max]`` adds that many smaller shapes of other classes to every image (the
zero-shot class stays the main, largest shape); ``caption_style: long`` writes 15-30 word
captions with counts, relations, positions, sizes and background (``world_captions``), and
``caption_objects: some`` makes scene and long captions name only some of the objects, long
ones some of them by colour or shape alone (e.g. ``recipes/data/world_claims.yaml``).
:func:`generate_world` writes

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
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from pipeline.base.configs import ConfigError

# Canonical colour -> (RGB, words a caption may use for it). Hues are far apart so that a
# moderate hue jitter in the image augmentation does not turn one colour into another; no
# colour is as dark or as grey as a background.
COLOURS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "red": ((215, 35, 35), ("red", "crimson", "scarlet")),
    "yellow": ((240, 215, 40), ("yellow", "golden")),
    "green": ((40, 165, 55), ("green", "emerald")),
    "blue": ((35, 70, 215), ("blue", "cobalt")),
    "purple": ((140, 45, 180), ("purple", "violet")),
    "white": ((245, 245, 245), ("white", "snow-white")),
    "orange": ((245, 125, 15), ("orange", "tangerine")),
    "cyan": ((25, 205, 215), ("cyan", "turquoise", "aqua")),
    "pink": ((250, 135, 195), ("pink", "rose")),
}
SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round dot"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "star": ("star", "five-pointed star"),
    "ring": ("ring", "hoop", "donut"),
    "cross": ("cross", "plus sign"),
    "diamond": ("diamond", "rhombus", "lozenge"),
}
PATTERNS = ("plain", "striped", "checkered", "dotted", "noisy")
TEXTURES = ("grass", "sand", "sky", "stone", "night")  # procedural, named in scene captions
BACKGROUNDS = PATTERNS + TEXTURES
CAPTION_STYLES = ("classic", "scene", "long")
CAPTION_OBJECTS = ("all", "some")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "centre")

# Zero-shot prompt templates ("{c}" is the class name), written to ``zeroshot/templates.txt``.
PROMPTS = ("a {c}", "a photo of a {c}", "a picture showing a {c}", "a {c} on a background")
SCENE_PROMPTS = (
    "a {c}",
    "a photo of a {c}",
    "a picture of a {c}",
    "close-up of a {c}",
    "an image showing a {c}",
    "a small {c}",
    "there is a {c} on the grass",
    "a {c} on the sand",
    "a picture of a {c} against the sky",
    "a {c} seen on a night sky",
)

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
# Scene captions: a frame around ``{things}`` (one or two object phrases) and ``{bg}``.
SCENE_TEMPLATES = (
    "{things}",
    "a photo of {things}",
    "{things} on {bg}",
    "a picture of {things} against {bg}",
    "there is {things} on {bg}",
    "close-up of {things}",
    "my snapshot of {things}, {bg} behind",
    "{things} seen on {bg}",
    "an image showing {things}",
    "{bg} with {things}",
)
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "plain": ("a plain background",),
    "striped": ("a striped background", "stripes"),
    "checkered": ("a checkered background",),
    "dotted": ("a dotted background", "polka dots"),
    "noisy": ("a noisy background",),
    "grass": ("the grass", "a lawn"),
    "sand": ("the sand", "a beach"),
    "sky": ("the sky", "a cloudy sky"),
    "stone": ("stone", "a stone wall"),
    "night": ("a night sky", "the night"),
}
PLACE_WORDS = {
    "centre": "in the centre",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}
# Fields added after the first worlds were published: world.json lists them only when set, so
# that a config that leaves them at their defaults still writes the same bytes.
_EXTENSIONS = {
    "max_objects": 1,
    "caption_style": "classic",
    "caption_objects": "all",
    "distractors": [0, 0],
    "distractor_size": [0.15, 0.25],
}
BOTH_NAMED = 0.6  # share of two-object scene captions that name both objects
REPEAT = 0.35  # chance that a distractor repeats the previous distractor's class (counts)
PLACE_TRIES = 50  # places tried for a distractor before it is left out
MAX_DISTRACTORS = 8
LONG_MAX_OBJECTS = 4  # long captions fit 15-30 words with up to this many objects
SIZE_WORD = 0.35  # share of object phrases with a size word
PLACE_WORD = 0.4  # share of one-object scene captions with a position phrase


@dataclass
class WorldConfig:
    """Sizes and knobs of the world; ``seed`` fixes every pixel and word.

    ``max_objects`` > 1 puts 1..max_objects non-overlapping shapes in each training and
    retrieval image (zero-shot images keep one); it needs ``caption_style: scene`` (captions
    naming one or both objects, their background and sometimes sizes and positions) or
    ``long``. ``distractors``, ``distractor_size``, ``caption_objects``: see the module
    docstring."""

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
    colours: tuple[str, ...] = ("red", "yellow", "green", "blue", "purple", "white")
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
    backgrounds: tuple[str, ...] = PATTERNS
    max_objects: int = 1
    caption_style: str = "classic"
    caption_objects: str = "all"  # "some": captions name only some of the objects
    distractors: tuple[int, int] = (0, 0)  # smaller shapes of other classes per image
    distractor_size: tuple[float, float] = (0.15, 0.25)  # their side, below small_size


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


@dataclass
class Thing:
    """One shape of a scene; ``box`` is its bounding box (x0, y0, x1, y1) in pixels."""

    colour: str
    shape: str
    size: str
    position: str
    box: Box

    @property
    def label(self) -> str:
        """The zero-shot class name (colour and shape)."""
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    """What one image shows: its shapes (the first is the primary one) and background."""

    things: list[Thing]
    background: str
    background_rgb: tuple[tuple[int, int, int], tuple[int, int, int]] = field(default=((0, 0, 0),) * 2)

    @property
    def labels(self) -> set[str]:
        """The classes of all shapes in the scene."""
        return {thing.label for thing in self.things}


def class_names(config: WorldConfig) -> list[str]:
    """Zero-shot class names in ImageFolder order (sorted folder names)."""
    return sorted(f"{c} {s}" for c in config.colours for s in config.shapes)


def _check(config: WorldConfig) -> None:
    unknown = [c for c in config.colours if c not in COLOURS] + [s for s in config.shapes if s not in SHAPES]
    unknown += [b for b in config.backgrounds if b not in BACKGROUNDS]
    if unknown:
        raise ConfigError(
            f"unknown world names {unknown}; colours {list(COLOURS)}, shapes {list(SHAPES)}, "
            f"backgrounds {list(BACKGROUNDS)}"
        )
    if not 0 <= config.noise_fraction < 1:
        raise ConfigError(f"noise_fraction {config.noise_fraction} must lie in [0, 1)")
    if config.caption_style not in CAPTION_STYLES:
        raise ConfigError(f"caption_style {config.caption_style!r}: use one of {list(CAPTION_STYLES)}")
    if config.max_objects < 1 or (config.max_objects > 1 and config.caption_style == "classic"):
        raise ConfigError(f"max_objects {config.max_objects}: use 1, or set caption_style: scene (or long) for more")
    _check_claims(config)


def _check_claims(config: WorldConfig) -> None:
    """Check the distractor and partial-caption knobs."""
    if config.caption_objects not in CAPTION_OBJECTS:
        raise ConfigError(f"caption_objects {config.caption_objects!r}: use one of {list(CAPTION_OBJECTS)}")
    if config.caption_objects == "some" and config.caption_style == "classic":
        raise ConfigError("caption_objects: some needs caption_style: scene or long")
    for name in ("distractors", "distractor_size"):
        if len(getattr(config, name)) != 2:
            raise ConfigError(f"{name} {list(getattr(config, name))}: give two numbers, [min, max]")
    low, high = config.distractors
    if not 0 <= low <= high <= MAX_DISTRACTORS:
        raise ConfigError(
            f"distractors {list(config.distractors)}: use [min, max], 0 <= min <= max <= {MAX_DISTRACTORS}"
        )
    classes = len(set(config.colours)) * len(set(config.shapes))
    # A distractor needs a second class; a noisy caption needs a scene with none of the classes.
    needed = (config.max_objects + high + 2) if config.noise_fraction else 2
    if high and classes < needed:
        raise ConfigError(
            f"distractors {list(config.distractors)}: need at least {needed} colour-shape classes "
            f"with noise_fraction {config.noise_fraction}, have {classes}; add colours or shapes"
        )
    if high and not 0 < config.distractor_size[0] <= config.distractor_size[1] < config.small_size[0]:
        raise ConfigError(
            f"distractor_size {list(config.distractor_size)}: use [min, max] with 0 < min <= max "
            f"< small_size min {config.small_size[0]} (distractors are smaller than the main shape)"
        )
    if config.caption_style == "long" and config.max_objects + high > LONG_MAX_OBJECTS:
        raise ConfigError(
            f"max_objects {config.max_objects} + distractors max {high}: long captions describe "
            f"at most {LONG_MAX_OBJECTS} objects; lower one of them"
        )


def _rng(config: WorldConfig, split: str, index: int) -> np.random.Generator:
    split_id = {"train": 0, "zeroshot": 1, "retrieval": 2}[split]
    return np.random.default_rng([config.seed, split_id, index])


def _position(box: Box, n: int, corners: bool) -> str:
    """Where a box lies: "centre", else a corner ("top left") or one side ("left")."""
    cx, cy = (box[0] + box[2]) / 2 / n - 0.5, (box[1] + box[3]) / 2 / n - 0.5
    if abs(cx) < 0.12 and abs(cy) < 0.12:
        return "centre"
    if corners:
        return ("top " if cy < 0 else "bottom ") + ("left" if cx < 0 else "right")
    if abs(cx) >= abs(cy):
        return "left" if cx < 0 else "right"
    return "top" if cy < 0 else "bottom"


def _identity(
    config: WorldConfig, rng: np.random.Generator, colour: str | None, shape: str | None
) -> tuple[str, str, str]:
    colour = colour or str(rng.choice(config.colours))
    shape = shape or str(rng.choice(config.shapes))
    return colour, shape, str(rng.choice(["small", "large"]))


def _box(config: WorldConfig, size: str, rng: np.random.Generator) -> Box:
    return _placed(config, config.small_size if size == "small" else config.large_size, rng)


def _placed(config: WorldConfig, bounds: tuple[float, float], rng: np.random.Generator) -> Box:
    """A square box, side a fraction in ``bounds`` of the image, anywhere in the image."""
    n = config.image_size
    side = int(round(n * rng.uniform(*bounds)))
    x0, y0 = (int(v) for v in rng.integers(0, n - side + 1, size=2))
    return x0, y0, x0 + side, y0 + side


def _thing(config: WorldConfig, identity: tuple[str, str, str], box: Box) -> Thing:
    corners = config.caption_style in ("classic", "long")
    return Thing(*identity, _position(box, config.image_size, corners), box)


def _overlaps(box: Box, things: list[Thing], gap: int = 1) -> bool:
    return any(
        box[0] < t.box[2] + gap and t.box[0] < box[2] + gap and box[1] < t.box[3] + gap and t.box[1] < box[3] + gap
        for t in things
    )


def _more_things(config: WorldConfig, rng: np.random.Generator, things: list[Thing]) -> None:
    """Add up to ``max_objects - 1`` shapes of other classes that overlap no earlier shape;
    a shape that finds no free place in a few tries is left out."""
    wanted = int(rng.integers(1, config.max_objects + 1))
    for _ in range(40):
        if len(things) >= wanted:
            return
        identity = _identity(config, rng, None, None)
        box = _box(config, identity[2], rng)
        label = f"{identity[0]} {identity[1]}"
        if not _overlaps(box, things) and label not in {t.label for t in things}:
            things.append(_thing(config, identity, box))


def _distractor(config: WorldConfig, rng: np.random.Generator, things: list[Thing]) -> tuple[str, str, str]:
    """A distractor's identity: the previous distractor's class (with chance REPEAT) or a
    random class other than the main shape's; its size is "tiny"."""
    if len(things) > 1 and rng.random() < REPEAT:
        return things[-1].colour, things[-1].shape, "tiny"
    colour, shape = things[0].colour, things[0].shape
    while f"{colour} {shape}" == things[0].label:
        colour, shape, _ = _identity(config, rng, None, None)
    return colour, shape, "tiny"


def _add_distractors(config: WorldConfig, rng: np.random.Generator, things: list[Thing]) -> None:
    """Add distractors[0]..distractors[1] distractor shapes that overlap no earlier shape; one
    that finds no free place in PLACE_TRIES tries is left out."""
    for _ in range(int(rng.integers(config.distractors[0], config.distractors[1] + 1))):
        identity = _distractor(config, rng, things)
        for _ in range(PLACE_TRIES):
            box = _placed(config, config.distractor_size, rng)
            if not _overlaps(box, things):
                things.append(_thing(config, identity, box))
                break


def sample_scene(
    config: WorldConfig,
    rng: np.random.Generator,
    colour: str | None = None,
    shape: str | None = None,
) -> Scene:
    """Draw a scene; ``colour``/``shape`` pin the class of its only shape (zero-shot set)."""
    identity = _identity(config, rng, colour, shape)
    background = str(rng.choice(config.backgrounds))
    things = [_thing(config, identity, _box(config, identity[2], rng))]
    # Muted backgrounds, darker than any shape's "white", so that colour names stay unambiguous.
    base = rng.integers(60, 126)
    tint = rng.integers(-15, 16, size=3)
    dark = tuple(int(np.clip(base + t, 0, 255)) for t in tint)
    light = tuple(int(np.clip(v + rng.integers(20, 41), 0, 255)) for v in dark)
    if config.max_objects > 1 and colour is None and shape is None:
        _more_things(config, rng, things)
    if config.distractors[1] > 0:
        _add_distractors(config, rng, things)
    return Scene(things, background, (dark, light))


def _pattern(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, n) blend weights between a pattern background's two colours."""
    yy, xx = np.mgrid[0:n, 0:n]
    if kind == "striped":
        period = int(rng.integers(6, 12))
        return ((xx + yy * int(rng.integers(0, 2))) // (period // 2)) % 2
    if kind == "checkered":
        cell = int(rng.integers(5, 10))
        return ((xx // cell) + (yy // cell)) % 2
    if kind == "dotted":
        step = int(rng.integers(7, 11))
        return (((xx % step) - step // 2) ** 2 + ((yy % step) - step // 2) ** 2) <= 3
    if kind == "noisy":
        return rng.random((n, n))
    return np.zeros((n, n))


def _smooth_noise(rng: np.random.Generator, rows: int, cols: int, n: int) -> np.ndarray:
    """(n, n) noise in [0, 1]: a rows x cols random grid, bilinearly upsampled."""
    grid = Image.fromarray(rng.random((rows, cols)).astype(np.float32), "F")
    return np.asarray(grid.resize((n, n), Image.Resampling.BILINEAR))


def _blend(low: tuple[int, int, int], high: tuple[int, int, int], weight: np.ndarray) -> np.ndarray:
    """(n, n, 3) colours from ``low`` (weight 0) to ``high`` (weight 1)."""
    low_rgb, high_rgb = np.array(low, np.float32), np.array(high, np.float32)
    return low_rgb + np.clip(weight, 0, 1)[..., None] * (high_rgb - low_rgb)


def _grass(n: int, rng: np.random.Generator) -> np.ndarray:
    blades = _smooth_noise(rng, max(2, n // 10), n, n)  # stretched vertically: blades
    patches = _smooth_noise(rng, 4, 4, n)
    return _blend((45, 70, 35), (95, 125, 70), 0.65 * blades + 0.35 * patches)


def _sand(n: int, rng: np.random.Generator) -> np.ndarray:
    yy = np.arange(n, dtype=np.float32)[:, None] / n
    warp = _smooth_noise(rng, 4, 4, n)
    ripples = 0.5 + 0.5 * np.sin(2 * np.pi * (yy * rng.uniform(4, 8) + warp))
    speckles = rng.random((n, n)).astype(np.float32)
    return _blend((140, 120, 90), (190, 170, 130), 0.55 * ripples + 0.45 * speckles)


def _sky(n: int, rng: np.random.Generator) -> np.ndarray:
    height = np.broadcast_to(np.linspace(0, 1, n, dtype=np.float32)[:, None], (n, n))
    clouds = np.clip(2 * _smooth_noise(rng, 4, 5, n) - 1, 0, 1) * 0.6
    blue = _blend((85, 115, 165), (150, 170, 200), height)
    return blue + clouds[..., None] * (np.array((180, 185, 195), np.float32) - blue)


def _stone(n: int, rng: np.random.Generator) -> np.ndarray:
    coarse, fine = _smooth_noise(rng, 5, 5, n), _smooth_noise(rng, 12, 12, n)
    grain = rng.random((n, n)).astype(np.float32)
    return _blend((70, 68, 65), (140, 135, 128), 0.5 * coarse + 0.3 * fine + 0.2 * grain)


def _night(n: int, rng: np.random.Generator) -> np.ndarray:
    height = np.broadcast_to(np.linspace(0, 1, n, dtype=np.float32)[:, None], (n, n))
    sky = _blend((12, 16, 40), (35, 40, 75), height)
    stars = rng.random((n, n)) > 0.985  # dim speckles: no shape colour is this faint
    return sky + stars[..., None] * np.array((110, 110, 95), np.float32)


_TEXTURE_MAKERS = {"grass": _grass, "sand": _sand, "sky": _sky, "stone": _stone, "night": _night}


def _background(scene: Scene, n: int, rng: np.random.Generator) -> Image.Image:
    if scene.background in _TEXTURE_MAKERS:
        pixels = _TEXTURE_MAKERS[scene.background](n, rng)
    else:
        dark, light = (np.array(c, dtype=np.float32) for c in scene.background_rgb)
        pattern = _pattern(scene.background, n, rng)
        pixels = dark + pattern[..., None].astype(np.float32) * (light - dark)
    pixels = pixels + rng.normal(0, 4, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _star(cx: float, cy: float, w: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        radius = (w / 2) if k % 2 == 0 else (w / 2) * 0.42
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _draw(draw: ImageDraw.ImageDraw, shape: str, x0: float, y0: float, x1: float, y1: float) -> None:
    w, cx, cy = x1 - x0, (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=255)
    elif shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=255)
    elif shape == "star":
        draw.polygon(_star(cx, cy, w), fill=255)
    elif shape == "ring":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=255)
        inset = 0.27 * w
        draw.ellipse((x0 + inset, y0 + inset, x1 - 1 - inset, y1 - 1 - inset), fill=0)
    elif shape == "cross":  # arms 0.4 of the side wide: still a plus at 10 px
        arm = w / 5
        draw.rectangle((cx - arm, y0, cx + arm - 1, y1 - 1), fill=255)
        draw.rectangle((x0, cy - arm, x1 - 1, cy + arm - 1), fill=255)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1 - 1, cy), (cx, y1 - 1), (x0, cy)], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {list(SHAPES)}")


def shape_mask(shape: str, box: tuple[int, int, int, int], n: int) -> Image.Image:
    """Binary ("L") mask of ``shape`` drawn in ``box`` on an n x n canvas (4x supersampled)."""
    scale = 4
    big = Image.new("L", (n * scale, n * scale), 0)
    _draw(ImageDraw.Draw(big), shape, *(v * scale for v in box))
    return big.resize((n, n), Image.Resampling.BOX)


def render(scene: Scene, n: int, rng: np.random.Generator) -> Image.Image:
    """The scene as an RGB image: textured background, then each shape in its colour."""
    image = _background(scene, n, rng)
    for thing in scene.things:
        rgb = np.array(COLOURS[thing.colour][0], dtype=np.float32)
        shade = rgb * rng.uniform(0.9, 1.0) + rng.normal(0, 3, size=(n, n, 3))
        fill = Image.fromarray(np.clip(shade, 0, 255).astype(np.uint8), "RGB")
        image.paste(fill, (0, 0), shape_mask(thing.shape, thing.box, n))
    return image


def describe(scene: Scene, rng: np.random.Generator, template: int | None = None) -> str:
    """A classic caption of the scene's primary shape, in one of several phrasings, with
    colour/shape synonyms."""
    index = int(rng.integers(len(TEMPLATES))) if template is None else template % len(TEMPLATES)
    thing = scene.things[0]
    return TEMPLATES[index].format(
        colour=str(rng.choice(COLOURS[thing.colour][1])),
        shape=str(rng.choice(SHAPES[thing.shape])),
        size=thing.size,
        background=scene.background,
        position=thing.position,
    )


def _phrase(thing: Thing, rng: np.random.Generator) -> str:
    """ "a [size] colour shape" with synonyms ("an" before a vowel)."""
    words = [thing.size] if rng.random() < SIZE_WORD else []
    words += [str(rng.choice(COLOURS[thing.colour][1])), str(rng.choice(SHAPES[thing.shape]))]
    text = " ".join(words)
    return ("an " if text[0] in "aeiou" else "a ") + text


def _relation(first: Thing, second: Thing) -> str:
    """Where ``first`` lies relative to ``second``, along the axis where they differ most."""
    dx = (first.box[0] + first.box[2] - second.box[0] - second.box[2]) / 2
    dy = (first.box[1] + first.box[3] - second.box[1] - second.box[3]) / 2
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def _things_text(scene: Scene, rng: np.random.Generator, both: float = BOTH_NAMED) -> tuple[str, list[Thing]]:
    """One or two (with chance ``both``) object phrases, and the shapes they name in order."""
    if len(scene.things) > 1 and rng.random() < both:
        order = [int(i) for i in rng.permutation(len(scene.things))[:2]]
        first, second = scene.things[order[0]], scene.things[order[1]]
        joiner = str(rng.choice(["and", "next to", _relation(first, second)]))
        return f"{_phrase(first, rng)} {joiner} {_phrase(second, rng)}", [first, second]
    thing = scene.things[int(rng.integers(len(scene.things)))]
    text = _phrase(thing, rng)
    if rng.random() < PLACE_WORD:
        text += " " + PLACE_WORDS[thing.position]
    return text, [thing]


def describe_scene(
    scene: Scene, rng: np.random.Generator, template: int | None = None, both: float = BOTH_NAMED
) -> tuple[str, list[Thing]]:
    """A scene caption naming one or (with chance ``both``) two shapes and the background;
    also the named shapes."""
    n = len(SCENE_TEMPLATES)
    index = int(rng.integers(n)) if template is None else template % n
    things, named = _things_text(scene, rng, both)
    bg = str(rng.choice(BACKGROUND_WORDS[scene.background]))
    return SCENE_TEMPLATES[index].format(things=things, bg=bg), named


def _caption(
    config: WorldConfig,
    scene: Scene,
    rng: np.random.Generator,
    template: int | None = None,
    some: bool = False,
) -> tuple[str, list[Thing], list[Thing]]:
    """The caption (``some``: of only some objects); the shapes it names by colour and shape,
    and those it names by colour or shape alone."""
    if config.caption_style == "long":
        from lightclip_demo.world_captions import describe_long  # it imports this module

        return describe_long(scene, rng, template, some)
    if config.caption_style == "scene":
        return *describe_scene(scene, rng, template, 0.0 if some else BOTH_NAMED), []
    return describe(scene, rng, template), scene.things[:1], []


def parse_caption(caption: str) -> tuple[str | None, str | None]:
    """(canonical colour, canonical shape) named in a caption of this world, None if absent."""
    colour = next((c for c, (_, words) in COLOURS.items() for w in words if f" {w} " in f" {caption} "), None)
    shape = next((s for s, words in SHAPES.items() for w in words if f" {w}" in f" {caption}"), None)
    return colour, shape


def _alternation(names: dict[str, tuple[str, ...]]) -> str:
    words = sorted((w for synonyms in names.values() for w in synonyms), key=len, reverse=True)
    return "|".join(re.escape(w) for w in words)


_OBJECT = re.compile(
    rf"\b({_alternation({c: w for c, (_, w) in COLOURS.items()})}) "
    rf"({_alternation(SHAPES)})(?:e?s)?\b"
)


def parse_objects(caption: str) -> list[str]:
    """Class names ("red circle") of the "colour shape" phrases in a scene caption, in order
    (plurals too: "two red circles" names "red circle")."""
    colour_of = {w: c for c, (_, words) in COLOURS.items() for w in words}
    shape_of = {w: s for s, words in SHAPES.items() for w in words}
    return [f"{colour_of[c]} {shape_of[s]}" for c, s in _OBJECT.findall(caption)]


def _save(image: Image.Image, path: Path, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=quality)


def _other_scene(config: WorldConfig, scene: Scene, rng: np.random.Generator) -> Scene:
    """A scene sharing no class with ``scene``: the source of a noisy caption."""
    other = scene
    while other.labels & scene.labels:
        other = sample_scene(config, rng)
    return other


def _train_row(config: WorldConfig, root: Path, index: int, noisy: bool) -> dict:
    rng = _rng(config, "train", index)
    scene = sample_scene(config, rng)
    _save(
        render(scene, config.image_size, rng),
        root / "train" / "images" / f"{index:06d}.jpg",
        config.jpeg_quality,
    )
    # A noisy caption was written for another scene, as web captions often are.
    described = _other_scene(config, scene, rng) if noisy else scene
    caption, named, partial = _caption(config, described, rng, None, config.caption_objects == "some")
    row = {"path": f"images/{index:06d}.jpg", "caption": caption, "noisy": noisy}
    row.update(_attributes(scene))
    if config.max_objects > 1 or config.distractors[1] > 0 or config.caption_style == "long":
        row["objects"] = [{**asdict(t), "box": list(t.box)} for t in scene.things]
        row["named"] = [t.label for t in named]
    if config.caption_style == "long":
        row["partly_named"] = [t.label for t in partial]
    return row


def _train_rows(config: WorldConfig, root: Path) -> Iterator[dict]:
    noise = np.random.default_rng([config.seed, 9]).random(config.train_samples) < config.noise_fraction
    for index in range(config.train_samples):
        yield _train_row(config, root, index, bool(noise[index]))


def _attributes(scene: Scene) -> dict:
    """The primary shape's attributes and the background, as the classic rows list them."""
    thing = scene.things[0]
    return {
        "colour": thing.colour,
        "shape": thing.shape,
        "size": thing.size,
        "background": scene.background,
        "position": thing.position,
        "box": list(thing.box),
    }


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
    prompts = PROMPTS if config.caption_style == "classic" else SCENE_PROMPTS
    (root / "zeroshot" / "templates.txt").write_text("".join(p + "\n" for p in prompts))
    return count


def _retrieval_entry(config: WorldConfig, root: Path, index: int) -> dict:
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
    raws = [_caption(config, scene, rng, start + k)[0] for k in range(config.captions_per_image)]
    return {
        "filepath": "images",
        "filename": name,
        "imgid": index,
        "split": "test",
        "sentences": [{"raw": raw, "tokens": raw.split()} for raw in raws],
    }


def _write_retrieval(config: WorldConfig, root: Path) -> int:
    images = [_retrieval_entry(config, root, index) for index in range(config.retrieval_images)]
    payload = {"dataset": "world", "images": images}
    (root / "retrieval" / "dataset_world.json").write_text(json.dumps(payload, indent=1))
    return len(images)


def _summary_config(config: WorldConfig) -> dict:
    """The config as world.json lists it (later fields only when they differ from defaults)."""
    listed = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    return {k: v for k, v in listed.items() if k not in _EXTENSIONS or v != _EXTENSIONS[k]}


def generate_world(config: WorldConfig, root: str | Path) -> dict:
    """Write the world under ``root`` (see the module docstring); return its summary."""
    _check(config)
    root = Path(root)
    rows = list(_train_rows(config, root))
    with (root / "train" / "captions.jsonl").open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    summary = {
        "config": _summary_config(config),
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
    table = pd.DataFrame({"url": base_url.rstrip("/") + "/" + rows["path"], "caption": rows["caption"]})
    path = Path(path) if path else Path(root) / "metadata.parquet"
    table.to_parquet(path, index=False)
    return path
