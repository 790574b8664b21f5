"""`python -m lightclip classify --model DIR IMAGE... --labels "a dog,a cat"`: zero-shot probabilities.

Each label is put into the prompt ``"a photo of a {label}."`` (``--prompt "{label}"`` uses the raw
labels). Output: per image, the labels sorted by probability (``--json``: one JSON object).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lightclip.inference import DEFAULT_PROMPT, LoadError, load


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files")
    parser.add_argument("--model", required=True, type=Path, help="export directory (`lightclip export`)")
    parser.add_argument("--labels", required=True, help='comma-separated labels, e.g. "a dog,a cat"')
    parser.add_argument("--prompt", default=DEFAULT_PROMPT,
                        help='prompt with a {label} field (default: "%(default)s"; "{label}" = raw labels)')
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                        help="PyTorch (safetensors) or onnxruntime (the .onnx towers)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the backend")
    parser.add_argument("--json", action="store_true", help="print {image: {label: probability}}")


def parse_labels(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if not labels:
        raise ValueError(f"--labels {text!r} holds no label; give e.g. \"a dog,a cat\"")
    return labels


def run(args: argparse.Namespace) -> int:
    try:
        labels = parse_labels(args.labels)
        if "{label}" not in args.prompt:
            raise ValueError(f"--prompt {args.prompt!r} has no {{label}} field")
        model = load(args.model, backend=args.backend, threads=args.threads)
        probs = model.classify(args.images, labels, prompt=args.prompt).tolist()
    except (LoadError, ValueError, FileNotFoundError) as err:
        print(f"lightclip classify: {err}", file=sys.stderr)
        return 1
    results = {str(path): dict(zip(labels, row)) for path, row in zip(args.images, probs)}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for path, scores in results.items():
        print(path)
        for label, p in sorted(scores.items(), key=lambda item: -item[1]):
            print(f"  {p:7.4f}  {label}")
    return 0
