"""`python -m lightclip classify --model DIR IMAGE... --labels "a dog,a cat" [key=value ...]`:
zero-shot probabilities.

Each label is put into the prompt ``"a photo of a {label}."`` (``--prompt "{label}"`` uses the raw
labels). Output: per image, the labels sorted by probability (``--json``: one JSON object).
Keys: ``model``, ``images``, ``labels``, ``prompt``, ``backend``, ``threads``, ``json``, from an
optional ``--recipe``; positional arguments with ``=`` are overrides, the others images.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lightclip.cli.options import add_recipe_arguments, comma_list, flag_values, load_config
from pipeline.base.configs import ConfigError

FLAGS = {
    "model": "model",
    "labels": "labels",
    "prompt": "prompt",
    "backend": "backend",
    "threads": "threads",
    "json": "json",
}


@dataclass
class ClassifyConfig:
    """A model (an export directory, or a run directory / checkpoint file), images, labels and
    the prompt they are put into."""

    model: str = ""
    images: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    prompt: str = ""  # "": lightclip.inference.DEFAULT_PROMPT
    backend: Literal["torch", "onnx"] = "torch"
    threads: int = 0  # 0: the backend's default
    json: bool = False


def configure(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser, "", positional=False)
    parser.add_argument("inputs", nargs="*", metavar="IMAGE", help="image files (and key=value overrides)")
    parser.add_argument(
        "--model", help="export directory (`lightclip export`), or a run directory / step_*.pt (torch backend)"
    )
    parser.add_argument("--labels", type=comma_list, help='comma-separated labels, e.g. "a dog,a cat"')
    parser.add_argument(
        "--prompt", help='prompt with a {label} field (default: "a photo of a {label}."; "{label}" = raw labels)'
    )
    parser.add_argument(
        "--backend", choices=["torch", "onnx"], help="PyTorch (safetensors, default) or onnxruntime (the .onnx towers)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads of the backend")
    parser.add_argument("--json", action="store_const", const=True, help="print {image: {label: probability}}")


def command_config(args: argparse.Namespace) -> ClassifyConfig:
    overrides = [text for text in args.inputs if "=" in text and not Path(text).exists()]
    images = [text for text in args.inputs if text not in overrides]
    flags = flag_values(args, FLAGS)
    config = load_config(ClassifyConfig, args.recipe, overrides, {**flags, "images": images or None})
    if not config.model or not config.images:
        raise ConfigError("give --model <export dir or run dir> and at least one image file")
    if not config.labels:
        raise ConfigError('no labels: give --labels "a dog,a cat"')
    if config.prompt and "{label}" not in config.prompt:
        raise ConfigError(f"--prompt {config.prompt!r} has no {{label}} field")
    return config


def print_results(results: dict[str, dict[str, float]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for path, scores in results.items():
        print(path)
        for label, p in sorted(scores.items(), key=lambda item: -item[1]):
            print(f"  {p:7.4f}  {label}")


def run(args: argparse.Namespace) -> int:
    from lightclip.inference import DEFAULT_PROMPT, load  # torch: not for --help

    config = command_config(args)
    model = load(Path(config.model), backend=config.backend, threads=config.threads or None)
    prompt = config.prompt or DEFAULT_PROMPT
    probs = model.classify([Path(p) for p in config.images], config.labels, prompt=prompt).tolist()
    print_results({path: dict(zip(config.labels, row)) for path, row in zip(config.images, probs)}, config.json)
    return 0
