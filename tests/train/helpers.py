"""Shared bits of the trainer tests: the tiny recipe pointed at synthetic shards."""

from __future__ import annotations

from pathlib import Path

from lightclip.trainconfig import TrainConfig
from pipeline.base.configs import from_dict, load_recipe

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "recipes" / "train" / "tiny.yaml"


def tiny_config(shards: Path, out_dir: Path, *overrides: str) -> TrainConfig:
    base = [f"data.shards={shards}", f"run.out_dir={out_dir}", "run.progress=false"]
    return from_dict(TrainConfig, load_recipe(TINY, [*base, *overrides]))
