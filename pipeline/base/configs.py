"""Typed dataclass configs from YAML recipes: strict about unknown keys, ``a.b=c`` overrides,
``base: other.yaml`` to start a recipe from another one.

Shared by ``pipeline`` and ``lightclip``: one component, one dataclass; only command-line
modules call :func:`load_recipe`, library code receives the narrowest dataclass it needs.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.base.errors import UserError

T = TypeVar("T")
BASE_KEY = "base"  # `base: other.yaml` at the top of a recipe: start from that recipe
MAX_BASE_DEPTH = 8


class ConfigError(UserError, ValueError):
    """A recipe key or value that does not fit its dataclass."""


def check_choices(key: str, given: Sequence[str], valid: Iterable[str]) -> None:
    """Refuse an empty list of names, or one naming something outside ``valid``."""
    names = list(valid)
    if not given or any(name not in names for name in given):
        raise ConfigError(f"{key} {list(given)}: valid names are {names}")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where) if len(inner) == 1 else value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            value = [value]
        item_type = args[0] if args else Any
        items = [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is float and isinstance(value, int):
        return float(value)
    if annotation in (int, float) and isinstance(value, str):
        try:  # YAML 1.1 reads `1e-3` (no dot) as a string
            return annotation(value)
        except ValueError:
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if annotation in (int, float, str) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys, and a value the dataclass's own
    check refuses, raise :class:`ConfigError`."""
    data = dict(data or {})
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        label = where or cls.__name__
        raise ConfigError(f"{label}: unknown key(s) {unknown}; valid keys are {sorted(names)}")
    kwargs = {key: _coerce(value, hints[key], f"{where}.{key}" if where else key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # the dataclass's own check (``__post_init__``) names the key
        raise ConfigError(str(err)) from err


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-Python view of a dataclass (tuples become lists, so YAML stays readable)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=c`` -> (["a", "b"], parsed c); the value is read as YAML (numbers, lists, bools)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.lr=1e-3)")
    key, raw = text.split("=", 1)
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    return key.split("."), _yaml(raw, f"override {text!r}") if raw else ""


def _yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)``; a syntax error is a :class:`ConfigError` naming ``where``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{where} is not valid YAML ({getattr(err, 'problem', None) or err}{at})") from None


def set_key(data: dict[str, Any], path: list[str], value: Any, where: str) -> None:
    """``data[a][b] = value`` for ``path`` = [a, b] (sections created as needed); ``where``
    names the setting in the error when a section on the path is not a mapping."""
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {part!r} is not a section")
    node[path[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b=c`` override set (nested dicts created)."""
    result = copy.deepcopy(data) or {}  # keeps the recipe's key order
    for text in overrides:
        path, value = parse_override(text)
        set_key(result, path, value, f"override {text!r}")
    return result


def merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``, neither changed: a mapping in both merges key by key; anything
    else in ``child`` (a list, a scalar, null) replaces the base's value."""
    merged = dict(base)
    for key, value in child.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both else value
    return merged


def _read_mapping(path: Path) -> dict[str, Any]:
    data = _yaml(path.read_text(), f"recipe {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must hold a mapping at the top level")
    return data


def _read_with_bases(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe at ``path`` merged over the recipe its ``base:`` names (recursively, without
    the ``base`` key); ``chain``: the recipes that led here, to refuse a cycle."""
    from pipeline.base.recipe_files import find_base

    data = _read_mapping(path)
    if BASE_KEY not in data:
        return data
    name = data.pop(BASE_KEY)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"recipe {path}: base must name a recipe file, got {name!r}")
    chain = (*chain, path.resolve())
    base = find_base(path, name).resolve()
    if base in chain or len(chain) >= MAX_BASE_DEPTH:
        problem = "a cycle of bases" if base in chain else f"a chain of more than {MAX_BASE_DEPTH} recipes"
        raise ConfigError(f"recipe {chain[0]}: {problem}: {' -> '.join(map(str, (*chain, base)))}")
    return merge(_read_with_bases(base, chain), data)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML recipe, merged over its ``base:`` recipe when it names one (see :func:`merge`),
    and apply overrides; a missing or faulty file names itself."""
    from pipeline.base.recipe_files import find_recipe  # shipped recipes from any folder

    path = find_recipe(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist (see recipes/ for the shipped ones)")
    return apply_overrides(_read_with_bases(path), overrides or [])


def save_resolved(config: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML (the resolved recipe saved beside a run's outputs)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
