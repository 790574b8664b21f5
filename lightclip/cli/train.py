"""`python -m lightclip train --recipe R [key=value ...]`: train from a recipe.

``--help`` lists every recipe key (type, default, meaning) from :class:`TrainConfig` itself."""

from __future__ import annotations

import argparse
import logging
import sys

from lightclip.trainconfig import TrainConfig, check_train_config
from pipeline.base.confighelp import settings_help
from pipeline.base.configs import ConfigError, from_dict, load_recipe

INTERRUPTED = 128  # + the signal number, as shells report a process stopped by a signal


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe", required=True, help="training recipe: a path, or a shipped one such as recipes/train/swin_nano.yaml"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="recipe overrides, e.g. data.shards=data/yfcc/{00000..00099}.tar optim.epochs=8",
    )
    parser.settings = settings_table


def settings_table() -> str:
    """Every key of a training recipe, for ``--help``."""
    return settings_help(TrainConfig)


def check_data_given(recipe: dict) -> None:
    """No ``data.shards``: said before torch is imported (the commonest first mistake)."""
    data = recipe.get("data", {})
    if isinstance(data, dict) and not data.get("shards"):
        raise ConfigError("no training data: set data.shards=<shard folder or brace pattern>")


def checked_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe with its overrides, typed and range-checked (torch-free: 0.1 s, not 5 s)."""
    recipe = load_recipe(args.recipe, args.overrides)  # a missing recipe or a bad override: at once
    check_data_given(recipe)
    cfg = from_dict(TrainConfig, recipe)  # a dataclass's own check (loss.token.temperature...) too
    check_train_config(cfg)
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = checked_config(args)  # a recipe or override mistake: before torch is imported
    from lightclip.training import TrainingInterrupted, train  # torch: only once the recipe is checked

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = train(cfg)
    except TrainingInterrupted as stopped:
        if stopped.is_main:
            print(f"lightclip train: {stopped}", file=sys.stderr)
        return INTERRUPTED + stopped.signum
    except KeyboardInterrupt:
        print(
            "lightclip train: stopped at once, without a new checkpoint; rerun the same command "
            "to resume from the last one",
            file=sys.stderr,
        )
        return INTERRUPTED + 2
    print(f"final checkpoint: {result.checkpoint}")
    return 0
