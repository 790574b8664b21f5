"""Per-row outcomes: every input row's final status and why, in ``OUT/rows/PPPPP.parquet``.

Like img2dataset's per-shard parquet files: one file per input partition (the metadata block
the row came from, in key order), with one row per input row, so ``rows in = kept + every
reject`` can be checked row by row. The files sit next to the shards and stay when ``_work``
is deleted. Columns (:data:`COLUMNS`): ``key``, ``url``, ``caption`` (as in the metadata),
``status`` (``kept`` or a reject reason, as in ``stats.json``), ``error`` (what went wrong:
the HTTP status or exception of a download, the image sizes, the filter and its setting, or
the bad line's parse error and byte offset) and the image sizes (0 when not known).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipeline import filters, unitfiles
from pipeline.charset import latin_share
from pipeline.filters import FilterConfig

ROWS_DIR = "rows"
COLUMNS = ("key", "url", "caption", "status", "error", "width", "height", "original_width", "original_height")
SIZE_COLUMNS = COLUMNS[5:]
NO_RECORD = "no record from the downloader"


def rows_dir(output: str | Path) -> Path:
    return Path(output) / ROWS_DIR


def rows_path(output: str | Path, partition: int) -> Path:
    return rows_dir(output) / f"{partition:05d}.parquet"


_FILTER_MESSAGES: dict[str, Callable[[str, str, FilterConfig], str]] = {
    filters.BAD_ROW: lambda reason, caption, config: f"bad line: {reason}",
    filters.UNSAFE_URL: lambda reason, caption, config: f"unsafe URL ({reason})",
    filters.EMPTY_CAPTION: lambda reason, caption, config: "caption empty after cleaning",
    filters.TOO_FEW_WORDS: lambda reason, caption, config: (
        f"{filters.word_count(caption)} words; filters.min_words is {config.min_words}"
    ),
    filters.TOO_MANY_WORDS: lambda reason, caption, config: (
        f"{filters.word_count(caption)} words; filters.max_words is {config.max_words}"
    ),
    filters.NON_LATIN_CAPTION: lambda reason, caption, config: (
        f"{latin_share(caption):.0%} Latin letters; filters.min_latin_share is {config.min_latin_share}"
    ),
    filters.DUPLICATE_URL: lambda reason, caption, config: "the same URL as an earlier row",
}


def filter_error(status: str, reason: str, caption: str, config: FilterConfig) -> str:
    """The message of a row stopped before the download (its filter and the setting)."""
    message = _FILTER_MESSAGES.get(status)
    return message(reason, caption, config) if message else ""


def download_error(status: str, error: str, width: int, height: int) -> str:
    """A downloaded row's message: the downloader's error, with the image size when known."""
    if status == unitfiles.KEPT:
        return ""
    return (error or status.replace("_", " ")) + (f" ({width}x{height})" if width else "")


def _text(values: pd.Series) -> pd.Series:
    """Strings as they are, anything else None (a bad row has no url; parquet wants one type)."""
    return values.map(lambda v: v if isinstance(v, str) else None).astype(object)


def partition_outcomes(rows: pd.DataFrame, samples: pd.DataFrame, config: FilterConfig) -> pd.DataFrame:
    """One partition's outcomes from its filtered rows (key, url, original_caption, caption,
    status, reason) and its downloaded samples (:data:`pipeline.unitfiles.SAMPLE_COLUMNS`)."""
    fetched = samples[["key", "status", "error", *SIZE_COLUMNS]].rename(
        columns={"status": "fetched", "error": "fetch_error"}
    )
    merged = rows.merge(fetched, on="key", how="left")
    passed = (merged["status"] == filters.KEPT).to_numpy()
    missing = passed & merged["fetched"].isna().to_numpy()
    status = merged["status"].where(~passed, merged["fetched"]).where(~missing, unitfiles.DOWNLOAD_FAILED)
    sizes = merged[list(SIZE_COLUMNS)].astype("float64").fillna(0)  # float: NaN for a missing record
    sizes = sizes.mul(passed & ~missing, axis=0).astype("int64")
    errors = [
        NO_RECORD if gone else download_error(s, e, w, h) if ok else filter_error(s, r, c, config)
        for ok, gone, s, e, w, h, r, c in zip(
            passed,
            missing,
            status,
            merged["fetch_error"],
            sizes["original_width"],
            sizes["original_height"],
            merged["reason"],
            merged["caption"],
        )
    ]
    frame = pd.DataFrame(
        {
            "key": merged["key"],
            "url": _text(merged["url"]),
            "caption": _text(merged["original_caption"]),
            "status": status.astype(str),
            "error": errors,
        }
    )
    return pd.concat([frame, sizes], axis=1)[list(COLUMNS)]


def write_outcomes(output: str | Path, partition: int, frame: pd.DataFrame) -> dict[str, int]:
    """Write one partition's outcomes atomically; returns its status counts."""
    path = rows_path(output, partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return {str(k): int(v) for k, v in frame["status"].value_counts().items()}


def read_outcomes(output: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Every row's outcome, in key order (``FileNotFoundError`` naming the folder when absent)."""
    paths = sorted(rows_dir(output).glob("*.parquet"))
    if not paths:
        raise FileNotFoundError(
            f"{rows_dir(output)} holds no per-row outcomes; "
            "(re)run python -m pipeline build with the same recipe to write them"
        )
    return pd.concat([pd.read_parquet(p, columns=columns) for p in paths], ignore_index=True)


def summary(frame: pd.DataFrame, status: str | None = None, examples: int = 3, width: int = 100) -> str:
    """Counts per status, then per reject status its commonest errors and a few example rows."""
    counts = frame["status"].value_counts()
    lines = [f"{len(frame):,d} rows: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
    for name in [status] if status else [s for s in counts.index if s != unitfiles.KEPT]:
        rows = frame[frame["status"] == name]
        lines.append(f"\n{name}: {len(rows):,d} rows")
        for error, count in Counter(rows["error"]).most_common(5):
            lines.append(f"  {count:>8,d}  {str(error)[:width]}")
        lines += [
            f"  e.g. {r.key}  {str(r.url)[:60]}  {str(r.error)[: width - 40]}" for r in rows.head(examples).itertuples()
        ]
    return "\n".join(lines)
