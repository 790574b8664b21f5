"""`python -m lightclip demo [key=value ...]`: the whole flow offline on a synthetic world.

Overrides are routed by their first word: ``world.*`` (the world recipe), ``data.*`` (the
pipeline build recipe), ``train.*`` (both training recipes), ``lightclip.*`` / ``clip.*`` (one
of them). Example of a short run::

    python -m lightclip demo --out runs/demo_small world.train_samples=400 train.optim.max_steps=20
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.configs import ConfigError, from_dict, load_recipe

MODEL_NAMES = {"lightclip": "LightCLIP", "clip": "CLIP"}
SECTIONS = ("world", "data", "train", *MODEL_NAMES)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="demo folder (cleared at start; default runs/demo)")
    parser.add_argument("--world", default="recipes/data/demo_world.yaml", help="synthetic world recipe")
    parser.add_argument("--data", default="recipes/data/demo.yaml", help="pipeline build recipe")
    parser.add_argument("--recipe", default="recipes/train/demo.yaml", help="LightCLIP training recipe")
    parser.add_argument("--baseline", default="recipes/train/demo_clip.yaml",
                        help="CLIP baseline training recipe ('none' to skip the baseline)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="world.*, data.*, train.* (both models), lightclip.* or clip.* overrides")


def route_overrides(overrides: list[str]) -> dict[str, list[str]]:
    """``section.key=value`` -> {section: ["key=value"]}; ``train.*`` goes to both models."""
    routed: dict[str, list[str]] = {name: [] for name in (*SECTIONS[:2], *MODEL_NAMES)}
    for text in overrides:
        section, _, rest = text.partition(".")
        if section not in SECTIONS or not rest:
            raise ConfigError(f"override {text!r} must start with one of {', '.join(s + '.' for s in SECTIONS)}")
        for target in MODEL_NAMES if section == "train" else (section,):
            routed[target].append(rest)
    return routed


def demo_config(args: argparse.Namespace):
    from lightclip.demo import DemoConfig
    from lightclip.trainconfig import TrainConfig
    from pipeline.build import BuildConfig
    from pipeline.world import WorldConfig

    routed = route_overrides(args.overrides)
    recipes = {"lightclip": args.recipe, "clip": args.baseline}
    models = {
        MODEL_NAMES[key]: from_dict(TrainConfig, load_recipe(path, routed[key]))
        for key, path in recipes.items()
        if path.lower() != "none"
    }
    return DemoConfig(
        out_dir=args.out,
        world=from_dict(WorldConfig, load_recipe(args.world, routed["world"])),
        build=from_dict(BuildConfig, load_recipe(args.data, routed["data"])),
        models=models,
    )


def run(args: argparse.Namespace) -> int:
    from lightclip.demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = demo_config(args)
        run_demo(config)
    except (ConfigError, FileExistsError, ValueError) as err:
        print(f"lightclip demo: {err}", file=sys.stderr)
        return 2
    return 0
