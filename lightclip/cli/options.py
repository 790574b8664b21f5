"""One way to configure a verb: a dataclass, loaded from an optional ``--recipe`` plus ``a.b=c``
overrides, with flags for the common keys on top (each flag is a shorthand for one key)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from lightclip.evalconfig import check_device
from pipeline.base.configs import ConfigError, apply_overrides, from_dict, load_recipe, set_key

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def add_recipe_arguments(parser: argparse.ArgumentParser, example: str, positional: bool = True) -> None:
    """``--recipe`` (optional: the dataclass defaults otherwise) and the ``key=value`` overrides."""
    parser.add_argument(
        "--recipe", default=None, help="YAML recipe of this verb's keys (default: the built-in defaults)"
    )
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


def pick_device(name: str, key: str = "--device") -> torch.device:
    """``auto``: CUDA when available, else CPU; a named device that this machine lacks is a
    :class:`ConfigError` naming ``key``."""
    import torch  # the verbs' parsing is torch-free; only a run picks a device

    check_device(name, key)
    cuda = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not (cuda and (device.index or 0) < torch.cuda.device_count()):
        found = f"{torch.cuda.device_count()} GPU(s)" if cuda else "no GPU"
        raise ConfigError(f"{key} {name}: this machine has {found}; use {key} cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key} {name}: MPS is not available here; use {key} cpu or auto")
    return device
