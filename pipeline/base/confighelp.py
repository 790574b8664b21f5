"""``settings_help(config_cls)``: every key of a dataclass recipe with its type, default and meaning.

One source: the text comes from the dataclasses themselves, so ``--help`` cannot drift from the
code. A field's meaning is, in order of preference, its ``field(metadata={"help": ...})``, the
comment on its line (``image_size: int = 256  # shorter side``), ``#:`` comment lines right
above it, or the first sentence of its class docstring that names it as ````name````.
Nested dataclass fields are listed with dotted keys (``download.image_size``), the form a
``key=value`` override takes.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator
from typing import Any, NamedTuple

_TOOL_COMMENT = re.compile(r"^(noqa|fmt:|type:|pragma|pyright|mypy)")
_SENTENCE_END = re.compile(r"(?<=[.;])\s+")
_LITERAL = re.compile(r"``([^`]+)``")
WIDTH = 100


class Setting(NamedTuple):
    """One recipe key: dotted name, type and default as text, one-line meaning."""

    key: str
    type: str
    default: str
    meaning: str


def type_name(annotation: Any) -> str:
    """``int``, ``list[str]``, ``str | None``, ``one of a|b`` for a Literal."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + "|".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if inner else origin.__name__
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: dataclasses.Field) -> str:
    """The default as it would be written in a recipe (JSON, which YAML reads too)."""
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


def _comments(source: str) -> dict[int, str]:
    """{line number: comment text} of the source's comments (tool directives left out)."""
    found = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                text = token.string.lstrip("#:").strip()
                if text and not _TOOL_COMMENT.match(text):
                    found[token.start[0]] = text
    except (tokenize.TokenError, SyntaxError):
        return {}
    return found


def _comment_for(node: ast.AnnAssign, comments: dict[int, str], lines: list[str]) -> str:
    trailing = [comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1) if n in comments]
    if trailing:
        return " ".join(trailing)
    above, line = [], node.lineno - 1
    while line in comments and lines[line - 1].lstrip().startswith("#:"):
        above.insert(0, comments[line])
        line -= 1
    return " ".join(above)


def field_comments(cls: type) -> dict[str, str]:
    """{field name: its source comment} for the fields ``cls`` itself declares."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.ClassDef):
        return {}
    comments, lines = _comments(source), source.splitlines()
    return {
        item.target.id: text
        for item in node.body
        if isinstance(item, ast.AnnAssign)
        and isinstance(item.target, ast.Name)
        and (text := _comment_for(item, comments, lines))
    }


def docstring_sentence(cls: type, name: str) -> str:
    """The first sentence of ``cls``'s docstring that names ````name````."""
    doc = " ".join((inspect.getdoc(cls) or "").split())
    for sentence in _SENTENCE_END.split(doc):
        if f"``{name}``" in sentence:
            return _LITERAL.sub(r"\1", sentence).rstrip(".;")
    return ""


def _meanings(cls: type) -> dict[str, str]:
    comments: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            comments.update(field_comments(base))
    return comments


def iter_settings(config_cls: type, prefix: str = "") -> Iterator[Setting]:
    """Every leaf key of ``config_cls`` (a dataclass), nested dataclasses flattened."""
    hints = typing.get_type_hints(config_cls)
    comments = _meanings(config_cls)
    for field in dataclasses.fields(config_cls):
        key, annotation = prefix + field.name, hints.get(field.name, field.type)
        if dataclasses.is_dataclass(annotation):
            yield from iter_settings(annotation, key + ".")
            continue
        meaning = field.metadata.get("help") or comments.get(field.name) or docstring_sentence(config_cls, field.name)
        yield Setting(key, type_name(annotation), default_text(field), " ".join(str(meaning).split()))


def settings_help(config_cls: type, width: int = WIDTH) -> str:
    """A table of every recipe key of ``config_cls``: ``key  type = default  meaning``."""
    settings = list(iter_settings(config_cls))
    if not settings:
        return ""
    heads = [f"{s.key}  {s.type} = {s.default}" for s in settings]
    column = min(max(len(h) for h in heads) + 2, width // 2)
    lines = []
    for head, setting in zip(heads, settings):
        if not setting.meaning:
            lines.append(f"  {head}")
            continue
        if len(head) + 2 > column:
            lines.append(f"  {head}")
            head = ""
        wrapped = textwrap.wrap(setting.meaning, max(width - column - 2, 20)) or [""]
        lines.append(f"  {head:<{column}}{wrapped[0]}")
        lines.extend(f"  {'':<{column}}{more}" for more in wrapped[1:])
    return "\n".join(lines)
