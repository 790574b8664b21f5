"""Metadata tables (YFCC15M-V2 JSON lines, parquet, csv, tsv, jsonl; ``.gz`` too) as ``key, url, caption`` rows.

Line formats (JSON lines, csv, tsv) are read here in blocks of ``blocksize`` bytes (of the
decompressed stream for ``.gz``): :func:`plan_blocks` on the client, :func:`read_block` in a
task; :func:`pipeline.cluster.read_table` turns them into partitions. A line that does not
parse (bad JSON, not UTF-8, wrong field count, not an object) is a row with status
``bad_row`` (see :mod:`pipeline.metadata_rows`, which checks the rows, keys them and lists the
bad ones); the rest of the file is read as usual. Partitions are fixed by the file and
``blocksize``, so a rerun with the same recipe reads the same rows into the same partitions.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd

from pipeline.base.errors import UserError

LINE_FORMATS = ("jsonl", "csv", "tsv")
ERROR_COLUMN = "row_error"  # why a row is a bad row ("" when it is not)
OFFSET_COLUMN = "row_offset"  # byte offset of the row's line (-1 when not from a line format)
_GZIP_MAGIC = b"\x1f\x8b"
_HEAD_LINES = 1000  # lines read up front to check the columns
_HEAD_BYTES = 8 << 20  # ... or fewer when they hold more bytes than this
_SKIP_CHUNK = 1 << 20  # the rest of an over-long line is skipped this many bytes at a time
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")
FORMATS = ("yfcc15m_v2", "jsonl", "parquet", "csv", "tsv")
_SUFFIX_FORMATS = {
    ".json": "jsonl",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
}


@dataclass
class MetadataConfig:
    """Where the url/caption table is and how to read it.

    ``format`` ``auto`` guesses from the suffix (``.json``/``.jsonl`` are JSON lines).
    ``yfcc15m_v2`` is DeCLIP's ``yfcc15m_clean_open_data.json`` (url, caption, filename).
    ``keep_columns`` are copied into each sample's ``key.json`` as text; a listed column that
    the file does not have is left out (with a note), so one recipe fits YFCC's rows and plain
    url/caption files. A ``.gz`` file is read as a stream: each block decompresses from the
    start, so a multi-GB ``.gz`` reads faster unpacked.
    """

    path: str = ""  # the metadata file (url/caption rows; .gz read as a stream)
    #: auto: from the suffix
    format: Literal["auto", "yfcc15m_v2", "jsonl", "parquet", "csv", "tsv"] = "auto"
    url_col: str = "url"  # column holding the image URL
    caption_col: str = "caption"  # column holding the caption
    #: copied into key.json (as text) when the file has them
    keep_columns: list[str] = field(default_factory=list)
    blocksize: str = "64MB"  # bytes of metadata per input partition
    max_line_bytes: int = 1 << 20  # a longer line is a bad_row (read in bounded chunks)
    max_json_depth: int = 32  # a JSON line nested deeper is a bad_row


class MetadataError(UserError, ValueError):
    """The metadata file is missing or lacks the configured columns."""


def resolve_format(config: MetadataConfig) -> str:
    """The concrete reader format (``jsonl``, ``parquet``, ``csv`` or ``tsv``)."""
    if config.format == "yfcc15m_v2":
        return "jsonl"
    if config.format != "auto":
        return config.format
    suffixes = [s.lower() for s in Path(config.path).suffixes if s.lower() != ".gz"]
    for suffix in reversed(suffixes):
        if suffix in _SUFFIX_FORMATS:
            return _SUFFIX_FORMATS[suffix]
    raise MetadataError(
        f"cannot tell the format of {config.path!r} from its name; set metadata.format to one of {FORMATS}"
    )


def check_metadata_path(config: MetadataConfig) -> Path:
    """The metadata file, checked up front: present, not empty, readable rows with the columns."""
    path = Path(config.path)
    if not config.path or not path.is_file():
        raise MetadataError(
            f"metadata file {config.path!r} not found. For YFCC15M-V2 download DeCLIP's "
            "yfcc15m_clean_open_data.json (see docs/data-pipeline.md) and pass metadata.path=FILE"
        )
    fmt = resolve_format(config)
    try:
        columns = _parquet_columns(path) if fmt == "parquet" else _head_columns(path, fmt, config)
    except MetadataError:
        raise
    except (OSError, EOFError, ValueError) as err:
        raise MetadataError(f"{path}: cannot read it as {fmt} ({err}); check the file or set metadata.format") from None
    check_columns(columns, config)
    return path


def present_keep_columns(config: MetadataConfig) -> list[str]:
    """The ``keep_columns`` that the file has (its header, schema or first rows)."""
    path, fmt = Path(config.path), resolve_format(config)
    columns = _parquet_columns(path) if fmt == "parquet" else _head_columns(path, fmt, config)
    return [c for c in config.keep_columns if c in columns]


def check_columns(columns: list[str], config: MetadataConfig) -> None:
    wanted = [config.url_col, config.caption_col]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise MetadataError(
            f"{config.path}: column(s) {missing} not found (columns are {list(columns)}); "
            "set metadata.url_col / metadata.caption_col"
        )


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def _head(path: Path, max_line: int) -> list[bytes | None]:
    """The first non-blank lines (at most :data:`_HEAD_LINES` or :data:`_HEAD_BYTES`); an
    over-long line is None."""
    head: list[bytes | None] = []
    total = 0
    with open_stream(path) as stream:
        for _, line in iter_lines(stream, 0, None, max_line):
            if line is None or line.strip():
                head.append(line)
                total += len(line or b"")
            if len(head) > _HEAD_LINES or total > _HEAD_BYTES:
                break
    return head


def _head_columns(path: Path, fmt: str, config: MetadataConfig) -> list[str]:
    """Columns of the first readable rows of a line format; refuses an empty or unreadable file."""
    head = _head(path, config.max_line_bytes)
    if not head:
        raise MetadataError(f"metadata file {path} is empty: give a file with url and caption rows (metadata.path)")
    header = _header(head[0], fmt, config.max_line_bytes) if fmt != "jsonl" else ()
    parsed = [parse_line(line, fmt, header, config.max_json_depth) for line in head[1 if header else 0 :]]
    good = [row for row, _ in parsed if row is not None]
    if not good:
        error = parsed[0][1] if parsed else "no row after the header"
        raise MetadataError(
            f"{path}: no readable row in its first {len(head)} lines ({error}); check the file or set metadata.format"
        )
    return list(dict.fromkeys(key for row in good for key in row))


# ------------------------------------------------------------------ line formats in blocks


@dataclass(frozen=True)
class Block:
    """The lines that start at byte ``start`` <= position < ``stop`` of the (decompressed) file."""

    path: str
    fmt: str
    index: int
    start: int
    stop: int
    header: tuple[str, ...] = ()  # csv/tsv column names (from the first line)
    max_line: int = 1 << 20  # longer lines are bad rows
    max_depth: int = 32  # JSON nesting deeper than this is a bad row
    fields: tuple[str, ...] = ()  # the JSON keys kept (empty: all)


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_stream(path: str | Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip (told by its first bytes, not its name)."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # noqa: SIM115


def stream_size(path: str | Path) -> int:
    if not is_gzip(path):
        return os.path.getsize(path)
    size = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            size += len(chunk)
    return size


def skip_line(stream: IO[bytes]) -> int:
    """Read to the end of the current line in bounded chunks; the number of bytes skipped."""
    skipped = 0
    while chunk := stream.readline(_SKIP_CHUNK):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def iter_lines(stream: IO[bytes], position: int, stop: int | None, max_line: int):
    """(offset, line without its newline) for the lines that start in [position, stop), the
    stream being at ``position``; a line longer than ``max_line`` bytes is (offset, None) and
    is never held in memory whole."""
    while stop is None or position < stop:
        line = stream.readline(max_line + 1)
        if not line:
            return
        start, position = position, position + len(line)
        if len(line) > max_line and not line.endswith(b"\n"):
            position += skip_line(stream)
            yield start, None
        else:
            yield start, line.rstrip(b"\n")


def _block_lines(block: Block):
    """(offset, line or None) of the lines that start in the block."""
    with open_stream(block.path) as stream:
        begin = block.start
        if begin > 0:
            stream.seek(begin - 1)
            if stream.read(1) != b"\n":
                begin += skip_line(stream)  # finish the line that started before us
        yield from iter_lines(stream, begin, block.stop, block.max_line)


def block_bytes(blocksize: str | int) -> int:
    """``"64MB"`` or a number -> bytes (:class:`MetadataError` when it is neither or not positive)."""
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(blocksize) if isinstance(blocksize, str) else int(blocksize)
    except (ValueError, TypeError):
        size = 0
    if size <= 0:
        raise MetadataError(f"metadata.blocksize={blocksize!r} is not a positive size such as 64MB")
    return size


def plan_blocks(path: str, fmt: str, blocksize: str | int, config: MetadataConfig | None = None) -> list[Block]:
    """The file cut into blocks of ``blocksize`` bytes (``"64MB"`` or a number); ``config``
    gives the line limits and the fields kept (default: its defaults, every field)."""
    limits = config or MetadataConfig(path=path)
    size = stream_size(path)
    step = block_bytes(blocksize)
    header: tuple[str, ...] = ()
    if fmt != "jsonl":
        with open_stream(path) as stream:
            first = next(iter_lines(stream, 0, None, limits.max_line_bytes), (0, b""))[1]
            header = _header(first, fmt, limits.max_line_bytes)
    fields = (config.url_col, config.caption_col, *config.keep_columns) if config else ()
    return [
        Block(
            str(path),
            fmt,
            i,
            i * step,
            min((i + 1) * step, size),
            header,
            limits.max_line_bytes,
            limits.max_json_depth,
            fields,
        )
        for i in range(max(1, math.ceil(size / step)))
    ]


def _header(line: bytes | None, fmt: str, max_line: int) -> tuple[str, ...]:
    if line is None:
        raise MetadataError(f"the {fmt} header line is longer than metadata.max_line_bytes ({max_line})")
    fields = _fields(line.decode("utf-8", errors="replace"), fmt)
    return tuple(f.strip() for f in fields)


def _fields(text: str, fmt: str) -> list[str]:
    text = text.rstrip("\r\n")
    if fmt == "tsv":
        return next(csv.reader([text], delimiter="\t", quoting=csv.QUOTE_NONE))
    return next(csv.reader([text]))


def json_depth(text: str, limit: int) -> int:
    """How deep ``text``'s JSON brackets nest, counted only past ``limit`` opening brackets
    (0 for lines with fewer, the usual case: no scan)."""
    if text.count("[") + text.count("{") <= limit:
        return 0
    depth = deepest = 0
    for char in _NOT_BRACKET.sub("", _STRINGS.sub("", text)):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _parse_json(text: str, max_depth: int) -> tuple[dict[str, Any] | None, str]:
    depth = json_depth(text, max_depth)
    if depth > max_depth:
        return None, f"JSON nested {depth} deep (metadata.max_json_depth is {max_depth})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"invalid JSON ({err.msg} at column {err.colno})"
    except (ValueError, RecursionError) as err:  # a number past Python's int-string limit
        return None, f"invalid JSON ({' '.join(str(err).split())[:120]})"
    if not isinstance(value, dict):
        return None, f"a JSON {type(value).__name__}, not an object"
    return value, ""


def parse_line(
    line: bytes | None, fmt: str, header: tuple[str, ...], max_depth: int = 32
) -> tuple[dict[str, Any] | None, str]:
    """(row, "") for a good line, (None, why) for a bad one (None: an over-long line)."""
    if line is None:
        return None, "line longer than metadata.max_line_bytes"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 (byte {err.start} of the line)"
    if fmt == "jsonl":
        return _parse_json(text, max_depth)
    try:
        fields = _fields(text, fmt)
    except csv.Error as err:
        return None, f"invalid {fmt} ({err})"
    if len(fields) != len(header):
        return None, f"{len(fields)} fields where the header has {len(header)}"
    return dict(zip(header, fields)), ""


def _kept_fields(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The row's ``fields`` only (all when empty), so a line with thousands of keys adds no columns."""
    return {k: row[k] for k in fields if k in row} if fields else row


def read_block(block: Block) -> pd.DataFrame:
    """The block's rows (one per non-blank line) with :data:`ERROR_COLUMN` and :data:`OFFSET_COLUMN`."""
    records, errors, offsets = [], [], []
    for position, line in _block_lines(block):
        if (line is not None and not line.strip()) or (block.header and position == 0):
            continue
        row, error = parse_line(line, block.fmt, block.header, block.max_depth)
        records.append(_kept_fields(row or {}, block.fields))
        errors.append(error)
        offsets.append(position)
    frame = pd.DataFrame.from_records(records, columns=list(block.header) or None)
    frame = frame if len(frame) == len(records) else pd.DataFrame(index=range(len(records)))
    frame[ERROR_COLUMN] = pd.Series(errors, dtype=object)
    frame[OFFSET_COLUMN] = pd.Series(offsets, dtype="int64")
    return frame
