"""`python -m lightclip summary [--recipe R] [key=value ...]`: parameter and MAC table of every
registered encoder at full size, or of the one model of a training recipe (``--recipe``, with
``model.*`` overrides; a vocabulary left to the tokenizer counts as ``--vocab-size``)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from lightclip.cli.options import add_recipe_arguments, load_config
from lightclip.modelconfig import ModelConfig, TextConfig
from lightclip.trainconfig import TrainConfig, check_model_config


def configure(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser, "model.image_size=160 (with --recipe: a training recipe)")
    parser.add_argument("--image-size", type=int, default=None, help="input resolution (default 224, or the recipe's)")
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        help="text vocabulary size where none is set (default: the text tower's default)",
    )


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The recipe's model (checked as a whole training recipe), else the full-size default."""
    base = load_config(TrainConfig, args.recipe, args.overrides, {"model.image_size": args.image_size}).model
    if base.text.vocab_size == 0 or not args.recipe:
        base = replace(base, text=replace(base.text, vocab_size=args.vocab_size or TextConfig.vocab_size))
    check_model_config(base)
    return base


def run(args: argparse.Namespace) -> int:
    base = model_config(args)  # a recipe or override mistake: before torch is imported
    from lightclip.summary import summarize, summarize_all, summary_table  # torch: not for --help

    print(
        f"{'The recipe' if args.recipe else 'Full-size'} model{'' if args.recipe else 's'} at {base.image_size} px, "
        f"text tower width {base.text.width}, {base.text.layers} layers, context {base.text.context_length}, "
        f"vocabulary {base.text.vocab_size}, joint space D = {base.embed_dim}. MACs per image / per caption."
    )
    print(summary_table([summarize(base)] if args.recipe else summarize_all(base)))
    return 0
