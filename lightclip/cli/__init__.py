"""`python -m lightclip VERB ...`: one module per verb under ``lightclip.cli``.

Each verb module defines ``configure(parser)`` and ``run(args) -> int``; only these modules see
argparse namespaces, library code receives dataclass configs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipeline.usererrors import run_guarded

VERBS = {
    "summary": ("lightclip.cli.summary", "parameter and MAC table of every encoder"),
    "train": ("lightclip.cli.train", "train from a recipe on WebDataset shards"),
    "eval": ("lightclip.cli.eval", "zero-shot classification and retrieval"),
    "export": ("lightclip.cli.export", "export the inference model (safetensors, ONNX)"),
    "classify": ("lightclip.cli.classify", "zero-shot label probabilities for images"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightclip", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (module_name, help_text) in VERBS.items():
        sub = verbs.add_parser(name, help=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # verb not installed in this build
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a verb. A user error (recipe, data, checkpoint, missing file...) raised by any verb
    is printed as one line and exits with code 2; anything else keeps its traceback."""
    args = build_parser().parse_args(argv)
    if not hasattr(args, "run"):
        print(f"lightclip {args.verb} is not available in this build", file=sys.stderr)
        return 2
    return run_guarded(f"lightclip {args.verb}", lambda: args.run(args))
