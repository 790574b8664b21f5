"""Metadata tables (YFCC15M-V2 JSON lines, parquet, csv, tsv, jsonl) as ``key, url, caption`` rows.

Only pure pandas work lives here; :func:`pipeline.cluster.read_table` turns a file into
partitions. Sample keys are ``PPPPPRRRRRRR``: the input partition (5 digits) and the row in it
(7 digits). Partitions are fixed by the file and ``blocksize``, so a rerun with the same recipe
names every row the same way; keys are digits only (no dots, which would break webdataset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

PARTITION_DIGITS = 5
ROW_DIGITS = 7
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
    ``keep_columns`` are copied into each sample's ``key.json``.
    """

    path: str = ""
    format: Literal["auto", "yfcc15m_v2", "jsonl", "parquet", "csv", "tsv"] = "auto"
    url_col: str = "url"
    caption_col: str = "caption"
    keep_columns: list[str] = field(default_factory=list)
    blocksize: str = "64MB"


class MetadataError(ValueError):
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
    path = Path(config.path)
    if not config.path or not path.exists():
        raise MetadataError(
            f"metadata file {config.path!r} not found. For YFCC15M-V2 download DeCLIP's "
            "yfcc15m_clean_open_data.json (see the README, section 'Data pipeline') and pass metadata.path=FILE"
        )
    return path


def make_key(partition: int, row: int) -> str:
    if row >= 10**ROW_DIGITS or partition >= 10**PARTITION_DIGITS:
        raise MetadataError(
            f"partition {partition} row {row} does not fit a sample key: lower metadata.blocksize"
        )
    return f"{partition:0{PARTITION_DIGITS}d}{row:0{ROW_DIGITS}d}"


def normalise_partition(df: pd.DataFrame, partition: int, config: MetadataConfig) -> pd.DataFrame:
    """Raw table partition -> ``key, url, caption, *keep_columns`` with keys for this partition."""
    wanted = [config.url_col, config.caption_col, *config.keep_columns]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise MetadataError(
            f"{config.path}: column(s) {missing} not found (columns are {list(df.columns)}); "
            "set metadata.url_col / metadata.caption_col / metadata.keep_columns"
        )
    out = pd.DataFrame(
        {
            "key": [make_key(partition, row) for row in range(len(df))],
            "url": df[config.url_col].astype(object).to_numpy(),
            "caption": df[config.caption_col].astype(object).to_numpy(),
        }
    )
    for column in config.keep_columns:
        out[column] = df[column].astype(object).to_numpy()
    return out
