"""The claims world: distractors, partial and long captions, heavy pair noise; every knob
alone leaves the existing worlds byte for byte as they were."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_world import RECIPES, best_shape, tree_bytes, tree_sha256

from lightclip_demo.world import (
    SCENE_PROMPTS,
    Scene,
    Thing,
    WorldConfig,
    class_names,
    generate_world,
    parse_objects,
    read_captions,
    sample_scene,
)
from lightclip_demo.world_captions import MAX_WORDS, MIN_WORDS, describe_long
from pipeline.base.configs import from_dict, load_recipe

# sha256 of every file of each recipe's world at 60 training, 1 zero-shot per class and 6
# retrieval images, recorded before distractors and long captions existed.
EXISTING_SHA256 = {
    "demo_world": "9b576fdf640c4bab84d762da5f05385e4d3a8a93e5b0e6e9bbe14da663acaf0b",
    "world_scenes": "8054172e95c078434fa018f7f759ce98f4e65726eb55e9a89b654f4b8e5ed815",
    "world_medium": "103834adbd7d0ad4aab86f85fee577fa0c983237635f22ca71115b02e644b962",
}


def recipe(name: str) -> WorldConfig:
    return from_dict(WorldConfig, load_recipe(RECIPES / f"{name}.yaml"))


CLAIMS = replace(recipe("world_claims"), train_samples=400, zeroshot_per_class=1, retrieval_images=10)


@pytest.fixture(scope="module")
def claims(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("claims")
    return root, generate_world(CLAIMS, root)


def labels(objects: list[dict]) -> set[str]:
    return {f"{o['colour']} {o['shape']}" for o in objects}


def words(caption: str) -> int:
    return len(caption.split())


@pytest.mark.parametrize("name", sorted(EXISTING_SHA256))
def test_existing_recipes_keep_their_bytes(name, tmp_path):
    config = replace(recipe(name), train_samples=60, zeroshot_per_class=1, retrieval_images=6)
    generate_world(config, tmp_path)
    assert tree_sha256(tmp_path) == EXISTING_SHA256[name]
    listed = json.loads((tmp_path / "world.json").read_text())["config"]
    assert not {"caption_objects", "distractors", "distractor_size"} & set(listed)


def test_claims_recipe_sizes():
    config = recipe("world_claims")
    assert config.image_size == 64 and 8000 <= config.train_samples <= 12000
    assert 6 <= len(config.colours) <= 8 and 5 <= len(config.shapes) <= 6
    assert 10 <= config.zeroshot_per_class <= 20 and config.retrieval_images == 300
    assert config.noise_fraction == 0.3 and config.caption_style == "long"
    assert config.caption_objects == "some" and config.distractors == (1, 3)


def test_same_seed_same_bytes_other_seed_other_bytes(claims, tmp_path):
    root, _ = claims
    generate_world(CLAIMS, tmp_path / "again")
    first = tree_bytes(root)
    assert tree_bytes(tmp_path / "again") == first
    generate_world(replace(CLAIMS, seed=CLAIMS.seed + 1), tmp_path / "other")
    other = tree_bytes(tmp_path / "other")
    images = [name for name in first if name.endswith(".jpg")]
    assert other.keys() == first.keys()
    assert sum(first[n] != other[n] for n in images) >= 0.95 * len(images)
    assert other["train/captions.jsonl"] != first["train/captions.jsonl"]


def test_layout_classes_in_folder_order(claims):
    root, summary = claims
    classes = class_names(CLAIMS)
    assert len(classes) == summary["zeroshot_classes"] == 42 and classes == sorted(classes)
    assert [p.name for p in sorted((root / "zeroshot").iterdir()) if p.is_dir()] == classes
    assert (root / "zeroshot" / "templates.txt").read_text().splitlines() == list(SCENE_PROMPTS)
    listed = summary["config"]
    assert listed["distractors"] == [1, 3] and listed["caption_objects"] == "some"
    assert listed["caption_style"] == "long" and "max_objects" not in listed


def test_images_hold_a_main_shape_and_smaller_distractors(claims):
    root, _ = claims
    rows = read_captions(root)
    counts = rows["objects"].map(len)
    assert counts.min() >= 2 and counts.max() <= 4
    assert all((counts == k).mean() > 0.2 for k in (2, 3, 4))
    repeated = 0
    for row in rows.itertuples():
        main, *rest = row.objects
        side = main["box"][2] - main["box"][0]
        assert all(o["box"][2] - o["box"][0] < side and o["size"] == "tiny" for o in rest)
        assert f"{main['colour']} {main['shape']}" not in labels(rest)
        repeated += len(labels(rest)) < len(rest)
    assert repeated >= 0.1 * len(rows)  # same-class distractors give captions counts


def test_zeroshot_class_is_the_main_largest_shape():
    for index, label in enumerate(class_names(CLAIMS)):
        colour, shape = label.split(" ")
        scene = sample_scene(CLAIMS, np.random.default_rng(index), colour, shape)
        main, *rest = scene.things
        assert main.label == label and 1 <= len(rest) <= 3
        assert all(t.label != label and t.box[2] - t.box[0] < main.box[2] - main.box[0] for t in rest)


def test_long_captions_have_15_to_30_words(claims):
    root, _ = claims
    rows = read_captions(root)
    counts = rows["caption"].map(words)
    assert counts.min() >= MIN_WORDS == 15 and counts.max() <= MAX_WORDS == 30
    assert counts.std() > 2  # lengths vary within the bounds
    karpathy = json.loads((root / "retrieval" / "dataset_world.json").read_text())
    raws = [s["raw"] for e in karpathy["images"] for s in e["sentences"]]
    assert all(MIN_WORDS <= words(raw) <= MAX_WORDS for raw in raws)
    assert all(len({s["raw"] for s in e["sentences"]}) == 5 for e in karpathy["images"])
    text = " ".join(rows["caption"])
    for phrase in ("to the left of", "above", "at the top left", "two ", "the background is"):
        assert phrase in text, phrase


@pytest.mark.parametrize(
    ("distractors", "objects"), [((0, 0), "all"), ((3, 3), "all"), ((0, 0), "some"), ((3, 3), "some")]
)
def test_long_caption_bounds_hold_for_one_to_four_objects(distractors, objects, tmp_path):
    config = replace(CLAIMS, distractors=distractors, caption_objects=objects, train_samples=150, retrieval_images=2)
    generate_world(config, tmp_path)
    rows = read_captions(tmp_path)
    assert rows["caption"].map(words).between(MIN_WORDS, MAX_WORDS).all()
    assert set(rows["objects"].map(len)) <= {1 + distractors[0], 1 + distractors[1]}


def test_some_captions_name_a_strict_subset(claims):
    root, _ = claims
    rows = read_captions(root)
    clean = rows[~rows["noisy"]]
    strict = partly = 0
    for row in clean.itertuples():
        assert list(dict.fromkeys(parse_objects(row.caption))) == row.named, row.caption
        mentioned = set(row.named) | set(row.partly_named)
        assert mentioned and mentioned <= labels(row.objects), row.caption
        assert not set(row.named) & set(row.partly_named)
        strict += mentioned < labels(row.objects)
        partly += bool(row.partly_named)
    assert strict >= 0.6 * len(clean) and partly >= 0.2 * len(clean)
    assert (clean["named"].map(len) == 0).mean() < 0.4  # most captions still name a class


def test_all_captions_name_every_object(tmp_path):
    generate_world(replace(CLAIMS, caption_objects="all", train_samples=150), tmp_path)
    rows = read_captions(tmp_path)
    for row in rows[~rows["noisy"]].itertuples():
        assert set(row.named) == labels(row.objects) and row.partly_named == [], row.caption


def test_noise_share_and_noisy_captions_describe_another_image(claims):
    root, summary = claims
    rows = read_captions(root)
    assert abs(summary["noisy_captions"] / len(rows) - 0.3) < 0.05
    for row in rows[rows["noisy"]].itertuples():
        assert not (set(row.named) | set(row.partly_named)) & labels(row.objects), row.caption


def test_named_shapes_are_in_the_image(claims):
    root, _ = claims
    rows = read_captions(root)
    seen = []
    for row in rows[~rows["noisy"]].head(200).itertuples():
        pixels = np.asarray(Image.open(root / "train" / row.path).convert("RGB"), np.float32)
        for obj in row.objects:
            if f"{obj['colour']} {obj['shape']}" in row.named:
                seen.append(best_shape(pixels, obj["colour"], obj["box"], CLAIMS.shapes) == obj["shape"])
    assert len(seen) > 150 and np.mean(seen) >= 0.95


def thing(colour: str, shape: str, box: tuple[int, int, int, int], position: str) -> Thing:
    return Thing(colour, shape, "small", position, box)


RELATIONS = {"to the left of": (0, True), "to the right of": (0, False), "above": (1, True), "below": (1, False)}


def relation_holds(clause: str, objects: list[dict]) -> bool | None:
    """Whether "<A> is <relation> <B>" holds for the boxes of A and B in ``objects``; None when
    the clause is no relation or A or B is not one named object of a class alone in the image."""
    for words, (axis, less) in RELATIONS.items():
        if f" is {words} " in clause:
            first, second = (parse_objects(part) for part in clause.split(f" is {words} "))
            classes = [f"{o['colour']} {o['shape']}" for o in objects]
            if len(first) == len(second) == 1 and all(classes.count(label) == 1 for label in first + second):
                a, b = (objects[classes.index(label)]["box"] for label in first + second)
                return (a[axis] + a[axis + 2] < b[axis] + b[axis + 2]) == less
    return None


def test_relations_are_true(claims):
    root, _ = claims
    rows = read_captions(root)
    clean = rows[~rows["noisy"]]
    checked = [relation_holds(clause, row.objects) for row in clean.itertuples() for clause in row.caption.split("; ")]
    assert sum(c is not None for c in checked) >= 20 and False not in checked
    related = clean["caption"].map(lambda c: any(f" is {w} " in c for w in RELATIONS))
    assert related.mean() >= 0.4


def test_relations_and_counts_of_a_known_scene():
    left = thing("red", "circle", (2, 30, 20, 48), "bottom left")
    right = thing("blue", "square", (40, 30, 58, 48), "bottom right")
    objects = [{"colour": t.colour, "shape": t.shape, "box": t.box} for t in (left, right)]
    pair = Scene([left, right], "sand")
    seen = set()
    for seed in range(60):
        text, named, partial = describe_long(pair, np.random.default_rng(seed))
        assert [t.label for t in named] == ["red circle", "blue square"] and partial == []
        assert "above" not in text and "below" not in text
        seen |= {relation_holds(clause, objects) for clause in text.split("; ")}
    assert seen == {True, None}
    twins = Scene(
        [
            left,
            right,
            thing("green", "star", (40, 4, 50, 14), "top right"),
            thing("green", "star", (4, 4, 14, 14), "top left"),
        ],
        "grass",
    )
    for seed in range(20):
        text, named, _ = describe_long(twins, np.random.default_rng(seed))
        assert " two " in text and "four" in text and "green star" in {t.label for t in named}


def test_parse_objects_reads_plurals():
    assert parse_objects("two crimson discs and three golden boxes") == ["red circle", "yellow square"]
    assert parse_objects("two white plus signs, a cobalt cross") == ["white cross", "blue cross"]
    assert parse_objects("two red shapes and a disc") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"caption_objects": "most"}, "caption_objects 'most'"),
        ({"distractors": (2, 1)}, r"distractors \[2, 1\]"),
        ({"distractor_size": (0.2, 0.4)}, "distractor_size"),
        ({"max_objects": 2}, "at most 4 objects"),
        ({"caption_style": "classic"}, "caption_objects: some needs caption_style: scene or long"),
        ({"distractors": (-1, 2)}, "0 <= min <= max"),
        ({"distractors": (5,)}, r"distractors \[5\]: give two numbers"),
        ({"distractors": (1, 9)}, "max <= 8"),
        ({"colours": ("red",), "shapes": ("circle", "star")}, "need at least 6 colour-shape classes"),
        ({"colours": ("red",), "shapes": ("star",), "noise_fraction": 0.0}, "need at least 2"),
        ({"distractor_size": (0.1, 0.2, 0.3)}, "distractor_size .*: give two numbers"),
    ],
)
def test_bad_claims_settings_are_rejected(change, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        generate_world(replace(CLAIMS, **change), tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.timeout(60)
def test_fewest_classes_allowed_still_build(tmp_path):
    """6 classes, scenes of up to 4: every noisy caption still finds a scene with none of them."""
    config = replace(
        CLAIMS, colours=("red", "blue"), shapes=("circle", "star", "square"), train_samples=200, retrieval_images=3
    )
    summary = generate_world(config, tmp_path)
    rows = read_captions(tmp_path)
    assert summary["noisy_captions"] > 30 and summary["zeroshot_classes"] == 6
    assert rows["caption"].map(words).between(MIN_WORDS, MAX_WORDS).all()


def test_each_knob_alone(tmp_path):
    """Distractors or partial captions without long captions: scene captions name one shape."""
    base = replace(recipe("world_medium"), train_samples=120, zeroshot_per_class=1, retrieval_images=2)
    generate_world(replace(base, distractors=(1, 2), distractor_size=(0.15, 0.3), caption_objects="some"), tmp_path)
    rows = read_captions(tmp_path)
    assert rows["objects"].map(len).between(2, 4).all()
    assert (rows["named"].map(len) == 1).all()
    assert all(parse_objects(r.caption) == r.named for r in rows.itertuples())
