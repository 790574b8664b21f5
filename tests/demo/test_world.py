"""The synthetic world: deterministic by seed, and its captions describe its images."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightclip_demo.world import (
    COLOURS,
    SCENE_PROMPTS,
    SHAPES,
    TEXTURES,
    WorldConfig,
    class_names,
    generate_world,
    parse_caption,
    parse_objects,
    read_captions,
    render,
    sample_scene,
    shape_mask,
    write_metadata,
)
from pipeline.base.configs import from_dict, load_recipe

SMALL = WorldConfig(seed=3, train_samples=240, zeroshot_per_class=2, retrieval_images=12, noise_fraction=0.1)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("world")
    return root, generate_world(SMALL, root)


def test_same_seed_same_bytes_other_seed_other_bytes(world, tmp_path):
    root, _ = world
    generate_world(SMALL, tmp_path / "again")
    first, again = tree_bytes(root), tree_bytes(tmp_path / "again")
    assert first.keys() == again.keys()
    assert first == again
    other_config = WorldConfig(**{**SMALL.__dict__, "seed": 4})
    generate_world(other_config, tmp_path / "other")
    other = tree_bytes(tmp_path / "other")
    assert other.keys() == first.keys()
    images = [name for name in first if name.endswith(".jpg")]
    assert sum(first[n] != other[n] for n in images) >= 0.95 * len(images)
    assert first["train/captions.jsonl"] != other["train/captions.jsonl"]


def test_layout_and_counts(world):
    root, summary = world
    classes = class_names(SMALL)
    assert len(classes) == len(SMALL.colours) * len(SMALL.shapes) == summary["zeroshot_classes"] == 30
    assert sorted(p.name for p in (root / "zeroshot").iterdir() if p.is_dir()) == classes
    assert all(len(list((root / "zeroshot" / c).glob("*.jpg"))) == 2 for c in classes)
    assert "{c}" in (root / "zeroshot" / "templates.txt").read_text()
    karpathy = json.loads((root / "retrieval" / "dataset_world.json").read_text())
    assert len(karpathy["images"]) == 12
    for entry in karpathy["images"]:
        assert entry["split"] == "test"
        raws = [s["raw"] for s in entry["sentences"]]
        assert len(raws) == SMALL.captions_per_image == len(set(raws))
        assert (root / "retrieval" / entry["filepath"] / entry["filename"]).is_file()
    rows = read_captions(root)
    assert len(rows) == 240 and summary["noisy_captions"] == int(rows["noisy"].sum())


def test_metadata_points_at_the_server(world, tmp_path):
    root, _ = world
    import pandas as pd

    path = write_metadata(root, "http://127.0.0.1:8123/", tmp_path / "meta.parquet")
    table = pd.read_parquet(path)
    assert list(table.columns) == ["url", "caption"] and len(table) == 240
    assert table["url"][0] == "http://127.0.0.1:8123/images/000000.jpg"
    assert (root / "train" / "images" / "000000.jpg").is_file()


def colour_mask(pixels: np.ndarray, colour: str) -> np.ndarray:
    """Pixels that are ``colour`` up to the renderer's shading (90-100% of its RGB)."""
    rgb = np.array(COLOURS[colour][0], dtype=np.float32)
    scale = np.clip((pixels @ rgb) / (rgb @ rgb), 0.88, 1.05)
    return np.linalg.norm(pixels - scale[..., None] * rgb, axis=-1) < 30


def dominant_colour(pixels: np.ndarray) -> str:
    counts = {colour: int(colour_mask(pixels, colour).sum()) for colour in COLOURS}
    return max(counts, key=counts.get)


def shape_of(mask: np.ndarray) -> str:
    """Shape from the mask's geometry: a ring has a hole; a square or triangle fills the bottom
    band of its bounding box (a circle or star does not); then the fill ratio of the box tells
    square (1.0) from triangle (0.5) and circle (0.79) from star (0.36)."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    box = mask[y0:y1, x0:x1]
    cy, cx = box.shape[0] // 2, box.shape[1] // 2
    if not box[cy - 1 : cy + 2, cx - 1 : cx + 2].any():
        return "ring"
    ratio = box.mean()
    bottom = box[-max(1, round(0.2 * box.shape[0])) :].mean()
    if bottom > 0.7:
        return "square" if ratio > 0.75 else "triangle"
    return "circle" if ratio > 0.65 else "star"


def assert_captions_describe_images(root: Path, summary: dict, least: int) -> None:
    rows = read_captions(root)
    checked = mismatched_noise = 0
    for row in rows.itertuples():
        colour, shape = parse_caption(row.caption)
        assert colour in COLOURS and shape in SHAPES, row.caption
        pixels = np.asarray(Image.open(root / "train" / row.path).convert("RGB"), dtype=np.float32)
        seen = (dominant_colour(pixels), shape_of(colour_mask(pixels, dominant_colour(pixels))))
        if row.noisy:  # web noise: the caption was written for another scene
            mismatched_noise += seen != (colour, shape)
            continue
        assert seen == (colour, shape), f"{row.path}: caption {row.caption!r}, image shows {seen}"
        checked += 1
    assert checked == len(rows) - summary["noisy_captions"] > least
    assert mismatched_noise == summary["noisy_captions"] >= 10


def test_captions_describe_their_images(world):
    assert_captions_describe_images(*world, least=200)


def test_demo_recipe_world_is_learnable_and_honest(tmp_path):
    """The demo's recipe: 30 colour-shape classes on textured backgrounds, shapes filling half
    of the frame or more, scene captions still describing their images."""
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "data" / "demo_world.yaml"
    config = from_dict(WorldConfig, load_recipe(recipe))
    assert len(class_names(config)) == 30 and len(config.shapes) == 5 and config.caption_style == "scene"
    assert {"grass", "sand", "sky", "night"} <= set(config.backgrounds)
    small = replace(config, train_samples=160, zeroshot_per_class=1, retrieval_images=4, noise_fraction=0.1)
    summary = generate_world(small, tmp_path)
    rows = read_captions(tmp_path)
    sides = np.array([row.box[2] - row.box[0] for row in rows.itertuples()]) / config.image_size
    assert sides.min() >= 0.49 and sides.max() <= 0.91
    assert summary["zeroshot_classes"] == 30 and summary["noisy_captions"] > 0
    clean = rows[~rows["noisy"]]
    named = [parse_caption(caption) for caption in clean["caption"]]
    assert named == list(zip(clean["colour"], clean["shape"]))  # synonyms map to the canonical names
    noisy = rows[rows["noisy"]]
    assert all(parse_caption(c) != (k, s) for c, k, s in zip(noisy["caption"], noisy["colour"], noisy["shape"]))


def test_unknown_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown world names"):
        generate_world(WorldConfig(colours=("red", "teal")), tmp_path)


# --- Scene worlds: more classes, several shapes per image, textured backgrounds -------------

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "data"
# sha256 over (relative path, bytes) of every file of DEFAULT_SMALL's world, recorded before
# scene worlds existed: the classic world must keep its bytes (it depends on the JPEG encoder,
# so a Pillow upgrade that changes libjpeg output changes it too).
DEFAULT_SMALL = WorldConfig(seed=1, train_samples=60, zeroshot_per_class=1, retrieval_images=6, noise_fraction=0.2)
DEFAULT_SMALL_SHA256 = "1f5209ad58f1bae9dbdedba64180e8dba760d19d3c2da581a6e815d366f40f51"


def tree_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for name, data in tree_bytes(root).items():
        digest.update(name.encode())
        digest.update(data)
    return digest.hexdigest()


def scene_recipe(name: str) -> WorldConfig:
    return from_dict(WorldConfig, load_recipe(RECIPES / f"{name}.yaml"))


def small_scene_world(name: str) -> WorldConfig:
    return replace(scene_recipe(name), train_samples=300, zeroshot_per_class=1, retrieval_images=10)


@pytest.fixture(scope="module", params=["world_scenes", "world_medium"])
def scene_world(request, tmp_path_factory) -> tuple[Path, dict, WorldConfig]:
    config = small_scene_world(request.param)
    root = tmp_path_factory.mktemp(request.param)
    return root, generate_world(config, root), config


def object_mask(pixels: np.ndarray, colour: str, box: tuple[int, int, int, int]) -> np.ndarray:
    """Pixels nearer ``colour`` than the background (median of a 2 px band around ``box``)."""
    x0, y0, x1, y1 = box
    band = np.zeros(pixels.shape[:2], bool)
    band[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = True
    band[y0:y1, x0:x1] = False
    background = np.median(pixels[band], axis=0)
    rgb = 0.95 * np.array(COLOURS[colour][0], dtype=np.float32)
    return np.linalg.norm(pixels - rgb, axis=-1) < np.linalg.norm(pixels - background, axis=-1)


def best_shape(pixels: np.ndarray, colour: str, box: tuple[int, int, int, int], shapes) -> str:
    """The shape whose clean mask in ``box`` overlaps the ``colour`` pixels there best (IoU)."""
    x0, y0, x1, y1 = box
    found = object_mask(pixels, colour, box)[y0:y1, x0:x1]

    def iou(shape: str) -> float:
        clean = (np.asarray(shape_mask(shape, box, pixels.shape[0])) > 127)[y0:y1, x0:x1]
        return (clean & found).sum() / (clean | found).sum()

    return max(shapes, key=iou)


def jpeg_pixels(image: Image.Image) -> np.ndarray:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32)


def test_default_world_keeps_its_bytes(tmp_path):
    generate_world(DEFAULT_SMALL, tmp_path)
    assert tree_sha256(tmp_path) == DEFAULT_SMALL_SHA256
    summary = json.loads((tmp_path / "world.json").read_text())
    assert "max_objects" not in summary["config"] and "caption_style" not in summary["config"]


def test_scene_world_same_seed_same_bytes(scene_world, tmp_path):
    root, _, config = scene_world
    generate_world(config, tmp_path / "again")
    assert tree_bytes(root) == tree_bytes(tmp_path / "again")
    generate_world(replace(config, seed=config.seed + 1), tmp_path / "other")
    other = tree_bytes(tmp_path / "other")
    assert other["train/captions.jsonl"] != tree_bytes(root)["train/captions.jsonl"]


def test_scene_recipes_classes_and_layout(scene_world):
    root, summary, config = scene_world
    classes = class_names(config)
    assert 30 <= len(classes) == summary["zeroshot_classes"] <= 48
    assert {"cross", "diamond"} <= set(config.shapes) and "orange" in config.colours
    assert sorted(p.name for p in (root / "zeroshot").iterdir() if p.is_dir()) == classes
    prompts = (root / "zeroshot" / "templates.txt").read_text().splitlines()
    assert prompts == list(SCENE_PROMPTS)
    assert all(p.count("{c}") == 1 and parse_objects(p.replace("{c}", "x")) == [] for p in prompts)
    assert summary["config"]["max_objects"] == 2 and summary["config"]["caption_style"] == "scene"
    rows = read_captions(root)
    counts = rows["objects"].map(len).value_counts()
    assert set(counts.index) == {1, 2} and counts[2] >= 0.3 * len(rows)
    assert set(rows["background"]) == set(config.backgrounds)
    karpathy = json.loads((root / "retrieval" / "dataset_world.json").read_text())
    assert all(len({s["raw"] for s in e["sentences"]}) == 5 for e in karpathy["images"])


def test_full_scene_recipes_sizes():
    scenes, medium = scene_recipe("world_scenes"), scene_recipe("world_medium")
    assert len(class_names(scenes)) == 48 and scenes.train_samples == 20000
    assert scenes.noise_fraction == 0.15 and scenes.image_size == 64
    assert set(TEXTURES) <= set(scenes.backgrounds) and scenes.small_size[0] <= 0.25
    assert 30 <= len(class_names(medium)) <= 48 and 6000 <= medium.train_samples <= 8000
    assert medium.noise_fraction == 0.1 and medium.small_size[0] > scenes.small_size[0]


def centre(obj: dict) -> tuple[float, float]:
    x0, y0, x1, y1 = obj["box"]
    return (x0 + x1) / 2, (y0 + y1) / 2


def check_scene_row(root: Path, row, shapes) -> None:
    """The caption names row.named; clean captions' shapes are in the image, where it says."""
    assert parse_objects(row.caption) == row.named, row.caption
    objects = {f"{o['colour']} {o['shape']}": o for o in row.objects}
    if row.noisy:
        assert not set(row.named) & set(objects), row.caption
        return
    assert set(row.named) <= set(objects), row.caption
    pixels = np.asarray(Image.open(root / "train" / row.path).convert("RGB"), dtype=np.float32)
    for label in row.named:
        obj = objects[label]
        assert best_shape(pixels, obj["colour"], obj["box"], shapes) == obj["shape"], row.caption
    relations = {"to the left of": 0, "to the right of": 0, "above": 1, "below": 1}
    for words, axis in relations.items():
        if f" {words} " in row.caption:
            first, second = (centre(objects[label])[axis] for label in row.named)
            assert (first < second) == (words in ("to the left of", "above")), row.caption


def test_scene_captions_name_shapes_in_the_image(scene_world):
    root, summary, config = scene_world
    rows = read_captions(root)
    for row in rows.itertuples():
        check_scene_row(root, row, config.shapes)
    named = rows["named"].map(len)
    assert (named == 2).sum() >= 50 and (named == 1).sum() >= 50
    assert rows["caption"].str.contains(" on the left| at the top| in the centre").any()


def test_scene_noise_fraction_within_tolerance(scene_world):
    _, summary, config = scene_world
    share = summary["noisy_captions"] / summary["train_samples"]
    assert abs(share - config.noise_fraction) < 0.05


@pytest.mark.parametrize(("size", "least"), [(64, 1.0), (32, 0.9)])
def test_every_scene_class_is_recognisable(size, least):
    """Each of the 48 classes, rendered alone on random backgrounds and JPEG-compressed, shows
    its colour, and its shape fits its own outline best: always at 64 px; at 32 px, where the
    smallest shapes are 8-10 px wide, nearly always."""
    config = replace(scene_recipe("world_scenes"), image_size=size)
    recognised = []
    for index, label in enumerate(class_names(config)):
        colour, shape = label.split(" ")
        for k in range(4):
            rng = np.random.default_rng([size, index, k])
            scene = sample_scene(config, rng, colour, shape)
            pixels = jpeg_pixels(render(scene, size, rng))
            assert dominant_colour(pixels) == colour, f"{label} at {size} px on {scene.background}"
            seen = best_shape(pixels, colour, scene.things[0].box, config.shapes)
            recognised.append(seen == shape)
    assert np.mean(recognised) >= least


def test_bad_scene_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="caption_style: scene"):
        generate_world(WorldConfig(max_objects=2), tmp_path)
    with pytest.raises(ValueError, match="caption_style 'web'"):
        generate_world(WorldConfig(caption_style="web"), tmp_path)
