"""Every shipped training recipe trains: 2 steps in its own precision on CPU, shrunk by
overrides (image size, widths, batch) to fit a test, on tiny synthetic shards."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from helpers import ROOT
from synthetic import write_shards

from lightclip.checkpoint import CONFIG_FILE, METRICS_FILE
from lightclip.trainconfig import TrainConfig
from lightclip.training import train
from pipeline.base.configs import from_dict, load_recipe

RECIPES = sorted((ROOT / "recipes" / "train").glob("*.yaml"))
SHRINK = [
    "model.image_size=64",
    "model.embed_dim=32",
    "model.text.width=32",
    "model.text.heads=2",
    "model.text.context_length=16",
    "optim.batch_size=8",
    "optim.accum_steps=1",
    "optim.max_steps=2",
    "data.workers=0",
    "data.shuffle_buffer=16",
    "data.shuffle_initial=8",
    "run.device=cpu",
    "run.tensorboard=false",
    "run.progress=false",
    "run.save_every=1000",
    "run.threads=1",
    "eval_every=0",
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, [12, 12])
    return folder


def test_the_paper_recipes_are_among_them():
    names = {path.stem for path in RECIPES}
    assert {f"{e}{s}" for e in ("resnet18", "mobilenet_v2", "swin_nano") for s in ("", "_clip")} <= names


def test_small_recipes_start_the_text_tower_as_a_bag_of_words_and_full_ones_as_clip():
    """The small recipes' text settings are the ones measured to learn faster from few samples
    (docs/benchmarks.md, sample efficiency); the full-size recipes keep CLIP's."""
    for path in RECIPES:
        text = from_dict(TrainConfig, load_recipe(path, [])).model.text
        small = path.stem in ("demo", "demo_clip", "tiny")
        assert (text.pooling, text.embedding_init_std) == (("mean", 1.0) if small else ("eos", 0.02)), path.stem


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_trains_two_steps_in_its_own_precision(recipe, shards, tmp_path):
    own = from_dict(TrainConfig, load_recipe(recipe)).run.precision
    config = from_dict(TrainConfig, load_recipe(recipe, [*SHRINK, f"data.shards={shards}", f"run.out_dir={tmp_path}"]))
    assert config.run.precision == own
    result = train(config)
    assert result.step == 2 and result.checkpoint.is_file()
    rows = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [row["step"] for row in rows if "loss" in row][-1] == 2
    assert all(math.isfinite(row["loss"]) for row in rows)
    assert rows[-1]["nonfinite_steps"] == 0
    assert yaml.safe_load((tmp_path / CONFIG_FILE).read_text())["run"]["precision"] == own
