"""`python -m lightclip ablate [--recipe R] [key=value ...]`: the objective ablation table."""

from __future__ import annotations

import argparse
import sys

from pipeline.configs import ConfigError, from_dict, load_recipe


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="recipes/ablation/demo.yaml",
                        help="ablation recipe (default: the demo world, 5 variants x 3 seeds)")  # fmt: skip
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="e.g. out_dir=runs/abl seeds=[0] 'overrides=[optim.max_steps=50]'")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from lightclip.ablate import AblationConfig, run_ablation

    try:
        config = from_dict(AblationConfig, load_recipe(args.recipe, args.overrides))
        report = run_ablation(config)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"lightclip ablate: {err}", file=sys.stderr)
        return 2
    print(report.read_text())
    print(f"report: {report}")
    return 0
