"""`python -m lightclip_demo [options] [key=value ...]`: the whole flow offline on a synthetic
world; `python -m lightclip_demo ablate [--recipe R] [key=value ...]`: the objective ablation.

Demo overrides are routed by their first word: ``world.*`` (the world recipe), ``data.*`` (the
pipeline build recipe), ``train.*`` (both training recipes), ``lightclip.*`` / ``clip.*`` (one
of them). Example of a short run::

    python -m lightclip_demo --out runs/demo_small world.train_samples=400 train.optim.max_steps=20

Ablation overrides are keys of :class:`lightclip_demo.ablate.AblationConfig`. Only this module
parses arguments or reads recipes; a user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipeline.base.configs import ConfigError, from_dict, load_recipe
from pipeline.base.errors import run_guarded

if TYPE_CHECKING:
    from lightclip_demo.run import DemoConfig

PROG = "lightclip-demo"
ABLATE = "ablate"
ABLATION_RECIPE = "recipes/ablation/demo.yaml"
SUITE_RECIPE = "recipes/ablation/suite.yaml"
MODEL_NAMES = {"lightclip": "LightCLIP", "clip": "CLIP"}
SECTIONS = ("world", "data", "train", *MODEL_NAMES)


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The whole flow offline on a synthetic world: world, local server, "
        "pipeline build, LightCLIP and CLIP training, zero-shot evaluation, report.",
        epilog=f"'{PROG} {ABLATE} --help': the objective ablation over seeds.",
    )
    parser.add_argument("--out", default="runs/demo", help="demo folder (cleared at start; default runs/demo)")
    parser.add_argument("--world", default="recipes/data/demo_world.yaml", help="synthetic world recipe")
    parser.add_argument("--data", default="recipes/data/demo.yaml", help="pipeline build recipe")
    parser.add_argument("--recipe", default="recipes/train/demo.yaml", help="LightCLIP training recipe")
    parser.add_argument(
        "--baseline",
        default="recipes/train/demo_clip.yaml",
        help="CLIP baseline training recipe ('none' to skip the baseline)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="world.*, data.*, train.* (both models), lightclip.* or clip.* overrides",
    )
    return parser


def ablate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {ABLATE}",
        description="Objective ablation over seeds: tables at equal steps and at equal wall time.",
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help=f"run the suite: the variants on several worlds, 95%% intervals (recipe default: {SUITE_RECIPE})",
    )
    parser.add_argument(
        "--recipe",
        default=None,
        help="ablation recipe (default: recipes/ablation/demo.yaml, the demo world, 6 variants x 3 seeds)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="e.g. out_dir=runs/abl seeds=[0] 'overrides=[optim.max_steps=50]'",
    )
    return parser


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


def demo_config(args: argparse.Namespace) -> DemoConfig:
    """The demo of the command line: each recipe with its routed overrides."""
    from lightclip.trainconfig import TrainConfig
    from lightclip_demo.run import DemoConfig
    from lightclip_demo.world import WorldConfig
    from pipeline.build import BuildConfig

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


def run_demo(args: argparse.Namespace) -> int:
    from lightclip_demo.run import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_demo(demo_config(args))
    return 0


def run_ablate(args: argparse.Namespace) -> int:
    from lightclip_demo.ablate import AblationConfig, run_ablation
    from lightclip_demo.suite import SuiteConfig, run_suite

    if args.suite:
        report = run_suite(from_dict(SuiteConfig, load_recipe(args.recipe or SUITE_RECIPE, args.overrides)))
    else:
        report = run_ablation(from_dict(AblationConfig, load_recipe(args.recipe or ABLATION_RECIPE, args.overrides)))
    print(report.read_text())
    print(f"report: {report}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo, or the ablation when the first argument is ``ablate``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [ABLATE]:
        args = ablate_parser().parse_args(argv[1:])
        return run_guarded(f"{PROG} {ABLATE}", lambda: run_ablate(args))
    args = demo_parser().parse_args(argv)
    return run_guarded(PROG, lambda: run_demo(args))
