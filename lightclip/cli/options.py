"""One way to configure a verb: a dataclass, loaded from an optional ``--recipe`` plus ``a.b=c``
overrides, with flags for the common keys on top (each flag is a shorthand for one key)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any, TypeVar

import torch

from pipeline.configs import apply_overrides, from_dict, load_recipe, set_key

T = TypeVar("T")


def add_recipe_arguments(parser: argparse.ArgumentParser, example: str, positional: bool = True) -> None:
    """``--recipe`` (optional: the dataclass defaults otherwise) and the ``key=value`` overrides."""
    parser.add_argument("--recipe", default=None,
                        help="YAML recipe of this verb's keys (default: the built-in defaults)")  # fmt: skip
    if positional:
        parser.add_argument("overrides", nargs="*", metavar="key=value", help=f"recipe overrides, e.g. {example}")


def load_config(cls: type[T], recipe: str | None, overrides: Iterable[str], flags: dict[str, Any]) -> T:
    """``cls`` from the recipe (or its defaults), then the flags that were given (not None), then
    the overrides; unknown keys are errors."""
    data = load_recipe(recipe) if recipe else {}
    for key, value in flags.items():
        if value is not None:
            set_key(data, key.split("."), value, key)
    return from_dict(cls, apply_overrides(data, list(overrides)))


def flag_values(args: argparse.Namespace, flags: dict[str, str]) -> dict[str, Any]:
    """{key: value} of the flags ``flags`` maps (argparse dest -> key); None where not given."""
    return {key: getattr(args, dest) for dest, key in flags.items()}


def comma_list(text: str | None) -> list[str] | None:
    """``"a, b,"`` -> ``["a", "b"]`` (None stays None: the flag was not given)."""
    if text is None:
        return None
    return [item.strip() for item in text.split(",") if item.strip()]


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
