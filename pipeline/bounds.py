"""Range checks for numeric recipe settings, run at start-up before anything is written.

A bound is ``(dotted key, lowest, highest)`` (``None``: no bound on that side); any dataclass
config can be checked against a table of them. NaN and infinities are never in range.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

from pipeline.base.configs import ConfigError

Bound = tuple[str, float | None, float | None]


def value_at(config: Any, key: str) -> Any:
    """``config.a.b`` for ``key`` = ``"a.b"``."""
    return functools.reduce(getattr, key.split("."), config)


def range_problem(value: Any, lowest: float | None, highest: float | None) -> str:
    """Why ``value`` is not a finite number in [lowest, highest] ("" when it is)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if not math.isfinite(value):
        return "must be a finite number"
    if lowest is not None and value < lowest:
        return f"must be at least {lowest:g}" + (f" and at most {highest:g}" if highest is not None else "")
    if highest is not None and value > highest:
        return f"must be at most {highest:g}"
    return ""


def check_bounds(config: Any, bounds: Iterable[Bound]) -> None:
    """:class:`ConfigError` naming the first setting of ``bounds`` out of its range (None, the
    "not set" of an optional setting, is in range)."""
    for key, lowest, highest in bounds:
        value = value_at(config, key)
        problem = "" if value is None else range_problem(value, lowest, highest)
        if problem:
            raise ConfigError(f"{key}={value!r} {problem}; set {key}=... in the recipe or on the command line")
