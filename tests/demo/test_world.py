"""The synthetic world: deterministic by seed, and its captions describe its images."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.configs import from_dict, load_recipe
from pipeline.world import (
    COLOURS,
    SHAPES,
    WorldConfig,
    class_names,
    generate_world,
    parse_caption,
    read_captions,
    write_metadata,
)

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
    """The demo's recipe: 20 colour-shape classes, shapes filling most of the frame, captions
    still describing their images."""
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "data" / "demo_world.yaml"
    config = from_dict(WorldConfig, load_recipe(recipe))
    assert len(class_names(config)) == 20 and len(config.shapes) == 4
    small = replace(config, train_samples=160, zeroshot_per_class=1, retrieval_images=4,
                    noise_fraction=0.1)
    summary = generate_world(small, tmp_path)
    rows = read_captions(tmp_path)
    sides = np.array([row.box[2] - row.box[0] for row in rows.itertuples()]) / config.image_size
    assert sides.min() >= 0.59 and sides.max() <= 0.96
    assert_captions_describe_images(tmp_path, summary, least=120)


def test_unknown_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown world names"):
        generate_world(WorldConfig(colours=("red", "teal")), tmp_path)
