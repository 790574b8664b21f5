"""Rows of a metadata partition checked and keyed: ``key, url, caption, *keep_columns``, a row
whose line did not parse or whose url/caption is not text keeps why in ``row_error``, and
``rejects.jsonl`` lists those rows with file, line and error.

Sample keys are ``PPPPPRRRRRRR``: the input partition (5 digits) and the row in it (7 digits),
so a rerun with the same recipe names every row the same way; keys are digits only (no dots,
which would break webdataset).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.metadata import ERROR_COLUMN, OFFSET_COLUMN, MetadataConfig, MetadataError, check_columns, open_stream

REJECTS_FILE = "rejects.jsonl"
PARTITION_DIGITS = 5
ROW_DIGITS = 7
_SURROGATE = re.compile("[\ud800-\udfff]")


def make_key(partition: int, row: int) -> str:
    if row >= 10**ROW_DIGITS or partition >= 10**PARTITION_DIGITS:
        raise MetadataError(f"partition {partition} row {row} does not fit a sample key: lower metadata.blocksize")
    return f"{partition:0{PARTITION_DIGITS}d}{row:0{ROW_DIGITS}d}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _value_problem(value: Any, column: str) -> str:
    """Why a url/caption value is not usable text ("" when it is text or missing)."""
    if _missing(value):
        return ""
    if not isinstance(value, str):
        return f"{column} is a {type(value).__name__}, not text"
    match = _SURROGATE.search(value)
    return f"{column} holds a lone surrogate (\\u{ord(match.group()):04x})" if match else ""


def keep_text(value: Any) -> str | None:
    """A ``keep_columns`` value as text: strings as they are, numbers and lists as JSON, a lone
    surrogate replaced (U+FFFD), missing as None."""
    if _missing(value):
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return _SURROGATE.sub("\ufffd", text)


def _row_errors(df: pd.DataFrame, config: MetadataConfig) -> list[str]:
    """Per row: the line's parse error, a column no row of the block has, or a non-text url/caption."""
    errors = list(df[ERROR_COLUMN]) if ERROR_COLUMN in df.columns else [""] * len(df)
    for column in (config.url_col, config.caption_col):
        if column not in df.columns:
            errors = [e or f"no '{column}' field" for e in errors]
        else:
            errors = [e or _value_problem(v, column) for e, v in zip(errors, df[column])]
    return errors


def normalise_partition(df: pd.DataFrame, partition: int, config: MetadataConfig) -> pd.DataFrame:
    """Raw table partition -> ``key, url, caption, *keep_columns, row_error, row_offset``.

    A row whose line did not parse, or whose url/caption is not text (a number, a list...),
    gets its reason in ``row_error``; a table (parquet) without a configured column raises.
    """
    if ERROR_COLUMN not in df.columns:
        check_columns(list(df.columns), config)
    errors = _row_errors(df, config)
    column = lambda name: df[name].astype(object).to_numpy() if name in df.columns else [None] * len(df)  # noqa: E731
    out = pd.DataFrame(
        {
            "key": [make_key(partition, row) for row in range(len(df))],
            "url": column(config.url_col),
            "caption": column(config.caption_col),
        }
    )
    for name in config.keep_columns:
        out[name] = pd.Series([keep_text(v) for v in column(name)], dtype=object)
    bad = [bool(e) for e in errors]
    out.loc[bad, ["url", "caption"]] = None
    out[ERROR_COLUMN] = errors
    out[OFFSET_COLUMN] = df[OFFSET_COLUMN].to_numpy() if OFFSET_COLUMN in df.columns else -1
    return out


_BYTE = re.compile(r" \(byte (\d+)\)$")


def reject_reason(error: str, offset: int) -> str:
    """The ``reason`` a bad row keeps (its byte offset lets :func:`write_rejects` find the line)."""
    return f"{error} (byte {offset})" if offset >= 0 else error


def write_rejects(directory: str | Path, path: str | Path, rows: Iterable[pd.DataFrame]) -> int:
    """``rejects.jsonl`` beside the shards: one line per bad row (file, line, byte, key, error,
    text) of the metadata file ``path``; ``rows`` hold ``key`` and ``reason`` of bad rows.
    Returns how many were written (the file is removed when there are none)."""
    records = [(k, r) for frame in rows for k, r in zip(frame["key"], frame["reason"])]
    target = Path(directory) / REJECTS_FILE
    if not records:
        target.unlink(missing_ok=True)
        return 0
    offsets = sorted({int(m.group(1)) for _, r in records if (m := _BYTE.search(r))})
    lines = locate_lines(path, offsets)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for key, reason in records:
            match = _BYTE.search(reason)
            offset = int(match.group(1)) if match else -1
            line, text = lines.get(offset, (None, None))
            entry = {
                "file": str(path),
                "line": line,
                "byte": offset if match else None,
                "key": key,
                "error": _BYTE.sub("", reason),
                "text": text,
            }
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    return len(records)


def locate_lines(path: str | Path, offsets: list[int], preview: int = 200) -> dict[int, tuple[int, str]]:
    """{byte offset: (1-based line number, start of the line)} for sorted ``offsets``."""
    found: dict[int, tuple[int, str]] = {}
    pending = list(reversed(offsets))
    position, newlines = 0, 0
    with open_stream(path) as stream:
        while pending and (chunk := stream.read(1 << 22)):
            end = position + len(chunk)
            while pending and pending[-1] < end:
                local = pending.pop() - position
                text = chunk[local : local + preview].split(b"\n", 1)[0].decode("utf-8", errors="replace")
                found[position + local] = (newlines + chunk.count(b"\n", 0, local) + 1, text)
            newlines += chunk.count(b"\n")
            position = end
    return found
