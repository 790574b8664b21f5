"""`python -m lightclip VERB ...`: one module per verb under ``lightclip.cli``.

Each verb module defines ``configure(parser)`` and ``run(args) -> int``; only these modules see
argparse namespaces, library code receives dataclass configs. Only the chosen verb's module is
imported, and verb modules import torch inside ``run``: ``--help`` and a bad argument answer
without loading torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from pipeline.base.errors import run_guarded

DESCRIPTION = (
    "LightCLIP: train lightweight CLIP models on WebDataset shards, evaluate them zero-shot, "
    "export them and classify images. `lightclip VERB --help` lists a verb's options."
)
VERBS = {
    "summary": ("lightclip.cli.summary", "parameter and MAC table of every encoder"),
    "train": ("lightclip.cli.train", "train from a recipe on WebDataset shards"),
    "eval": ("lightclip.cli.eval", "zero-shot classification and retrieval"),
    "export": ("lightclip.cli.export", "export the inference model (safetensors, ONNX)"),
    "classify": ("lightclip.cli.classify", "zero-shot label probabilities for images"),
    "results": ("lightclip.cli.results", "merge per-(model, dataset) result files into one CSV"),
}


class VerbParser(argparse.ArgumentParser):
    """A verb's parser; ``settings`` (when set) returns a table printed after ``--help``, built
    only when help is asked for (it may import the verb's configs)."""

    settings: Callable[[], str] | None = None

    def format_help(self) -> str:
        text = super().format_help()
        return f"{text}\nsettings (key=value, or in the --recipe YAML):\n{self.settings()}\n" if self.settings else text


def chosen_verb(argv: list[str]) -> str | None:
    """The verb argparse will pick: the first argument that is not an option."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every verb listed and only verb ``only`` configured (its module imported);
    ``"*"`` configures them all."""
    parser = argparse.ArgumentParser(prog="lightclip", description=DESCRIPTION)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=VerbParser)
    for name, (module_name, help_text) in VERBS.items():
        sub = verbs.add_parser(
            name, help=help_text, description=help_text, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        if only in (name, "*"):
            configure_verb(sub, module_name)
    return parser


def configure_verb(sub: argparse.ArgumentParser, module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        return  # verb not installed in this build
    module.configure(sub)
    sub.set_defaults(run=module.run)


def main(argv: list[str] | None = None) -> int:
    """Run a verb. A user error (recipe, data, checkpoint, missing file...) raised by any verb
    is printed as one line and exits with code 2; anything else keeps its traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = chosen_verb(argv)
    args = build_parser(verb if verb in VERBS else None).parse_args(argv)
    if not hasattr(args, "run"):
        print(f"lightclip {args.verb} is not available in this build", file=sys.stderr)
        return 2
    return run_guarded(f"lightclip {args.verb}", lambda: args.run(args))
