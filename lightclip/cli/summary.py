"""`python -m lightclip summary`: parameter and MAC table of every registered encoder."""

from __future__ import annotations

import argparse
from dataclasses import replace

from lightclip.models import ModelConfig, TextConfig


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-size", type=int, default=224, help="input resolution (default 224)")
    parser.add_argument("--vocab-size", type=int, default=TextConfig.vocab_size, help="text vocabulary size")


def run(args: argparse.Namespace) -> int:
    from lightclip.summary import summarize_all, summary_table

    base = ModelConfig(image_size=args.image_size)
    base = replace(base, text=replace(base.text, vocab_size=args.vocab_size))
    print(
        f"Full-size models at {args.image_size} px, text tower width {base.text.width}, "
        f"{base.text.layers} layers, context {base.text.context_length}, vocabulary {base.text.vocab_size}, "
        f"joint space D = {base.embed_dim}. MACs per image / per caption."
    )
    print(summary_table(summarize_all(base)))
    return 0
