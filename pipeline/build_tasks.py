"""The build's stages as plain functions, one Dask task each (see :mod:`pipeline.build`); each
writes its output atomically under ``OUT/_work`` (laid out by :class:`Work`) and skips work a
previous run finished."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import augment_text, download, filters, metadata_rows, outcomes, unitfiles
from pipeline.augment_text import AugmentConfig
from pipeline.base import shards
from pipeline.download import DownloadConfig
from pipeline.filters import FilterConfig
from pipeline.metadata import MetadataConfig

MAX_ERROR_KINDS = 50  # download errors kept per unit and in stats.json


@dataclass(frozen=True)
class Work:
    root: Path

    def filtered(self, partition: int) -> Path:
        return self.root / "filtered" / f"{partition:05d}.parquet"

    def rows(self, partition: int) -> Path:
        return self.root / "rows" / f"{partition:05d}.parquet"

    def unit(self, partition: int, unit: int) -> Path:
        return self.root / "units" / f"{partition:05d}-{unit:05d}"

    def variants(self, partition: int) -> Path:
        return self.root / "variants" / f"{partition:05d}.parquet"


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def filter_task(
    raw: pd.DataFrame | None, partition: int, work: Work, meta: MetadataConfig, config: FilterConfig
) -> tuple[int, np.ndarray]:
    """Stage 1 for one input partition -> (row count, URL digests of the rows still kept)."""
    path = work.filtered(partition)
    if path.is_file():
        frame = pd.read_parquet(path)
    else:
        frame = filters.apply_filters(metadata_rows.normalise_partition(raw, partition, meta), config)
        _write_parquet(frame, path)
    return len(frame), filters.url_digests(frame.loc[frame["status"] == filters.KEPT, "url"])


def dedup_task(partition: int, keep: np.ndarray, work: Work) -> dict[str, Any]:
    """Stage 2: mark duplicates -> {"statuses": counts, "reasons": unsafe-URL reasons, "kept"}."""
    path = work.rows(partition)
    if path.is_file():
        frame = pd.read_parquet(path)
    else:
        frame = filters.mark_duplicates(pd.read_parquet(work.filtered(partition)), keep)
        _write_parquet(frame, path)
    reasons = frame.loc[frame["status"] == filters.UNSAFE_URL, "reason"].value_counts()
    counts = filters.count_statuses(frame)
    return {
        "statuses": counts,
        "reasons": {str(k): int(v) for k, v in reasons.items()},
        "kept": counts.get(filters.KEPT, 0),
    }


def unit_rows(work: Work, partition: int, unit: int, samples_per_unit: int) -> pd.DataFrame:
    """The kept rows of one download unit, in key order."""
    frame = pd.read_parquet(work.rows(partition))
    kept = frame[frame["status"] == filters.KEPT]
    return kept.iloc[unit * samples_per_unit : (unit + 1) * samples_per_unit].reset_index(drop=True)


def download_task(
    partition: int, unit: int, work: Work, config: DownloadConfig, allow_hosts: tuple[str, ...]
) -> dict[str, Any]:
    """Stage 3: one unit through img2dataset -> its status counts and download errors."""
    folder = work.unit(partition, unit)
    if not unitfiles.is_done(folder):
        download.download_unit(unit_rows(work, partition, unit, config.samples_per_unit), folder, config, allow_hosts)
    samples = unitfiles.read_samples(folder)
    errors = samples.loc[samples["status"] == unitfiles.DOWNLOAD_FAILED, "error"].value_counts()
    return {
        "rows": unitfiles.read_result(folder).rows,
        "statuses": {str(k): int(v) for k, v in samples["status"].value_counts().items()},
        "errors": {str(k): int(v) for k, v in errors.head(MAX_ERROR_KINDS).items()},
    }


def augment_task(partition: int, work: Work, config: AugmentConfig) -> int:
    """Stage 3 (beside the downloads): K variants for every kept row of an input partition.

    One task per partition rather than per unit, so few workers pay WordNet's load time.
    """
    path = work.variants(partition)
    if not path.is_file():
        frame = pd.read_parquet(work.rows(partition), columns=["key", "caption", "status"])
        rows = frame[frame["status"] == filters.KEPT]
        _write_parquet(augment_text.augment_partition(rows, config), path)
    return partition


def outcome_task(partition: int, units: list[int], work: Work, output: str, config: FilterConfig) -> dict[str, int]:
    """Every row of an input partition with its final status and error in ``OUT/rows``."""
    rows = pd.read_parquet(
        work.rows(partition), columns=["key", "url", "original_caption", "caption", "status", "reason"]
    )
    parts = [unitfiles.read_samples(work.unit(partition, unit)) for unit in units]
    samples = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=unitfiles.SAMPLE_COLUMNS)
    return outcomes.write_outcomes(output, partition, outcomes.partition_outcomes(rows, samples, config))


def kept_samples(work: Work, partition: int, unit: int) -> pd.DataFrame:
    """Downloaded samples of a unit joined with their metadata and variants, in key order."""
    samples = unitfiles.read_samples(work.unit(partition, unit))
    samples = samples[samples["status"] == unitfiles.KEPT]
    rows = pd.read_parquet(work.rows(partition)).drop(columns=["status", "reason"])
    variants = pd.read_parquet(work.variants(partition))
    joined = samples.merge(rows, on="key", how="left").merge(variants, on="key", how="left")
    return joined.sort_values("key").reset_index(drop=True)


def _sample(row: pd.Series, folder: Path, extra_columns: list[str]) -> shards.Sample:
    meta = {
        "key": row["key"],
        "url": row["url"],
        "caption": row["caption"],
        "original_caption": row["original_caption"],
        "width": int(row["width"]),
        "height": int(row["height"]),
        "original_width": int(row["original_width"]),
        "original_height": int(row["original_height"]),
        **{c: row[c] for c in extra_columns},
    }
    return shards.Sample(
        key=row["key"],
        image=unitfiles.read_image(folder, int(row["offset"]), int(row["length"])),
        caption=row["caption"],
        meta=meta,
        variants=[str(v) for v in row["variants"]],
    )


def shard_task(
    index: int, pieces: list[tuple[int, int, int, int]], work: Work, output: str, extra_columns: list[str]
) -> shards.ShardInfo:
    """Stage 4: write final shard ``index`` from (partition, unit, start, stop) slices."""

    def samples():
        for partition, unit, start, stop in pieces:
            frame = kept_samples(work, partition, unit).iloc[start:stop]
            folder = work.unit(partition, unit)
            for _, row in frame.iterrows():
                yield _sample(row, folder, extra_columns)

    return shards.write_shard(output, index, samples())


def texts_for_tokenizer(work: Work, units: list[tuple[int, int, int]], limit: int) -> Iterator[str]:
    """Kept captions and their variants, in sample order (at most ``limit`` when > 0)."""
    count = 0
    for partition, unit, _ in units:
        frame = kept_samples(work, partition, unit)
        for caption, variants in zip(frame["caption"], frame["variants"]):
            for text in (caption, *variants):
                if limit and count >= limit:
                    return
                count += 1
                yield str(text)


def write_rejects(output: Path, path: str, work: Work, dedup: list[dict]) -> None:
    """``rejects.jsonl``: file, line and error of every bad metadata row."""
    bad = [p for p, d in enumerate(dedup) if d["statuses"].get(filters.BAD_ROW)]
    frames = (pd.read_parquet(work.rows(p), columns=["key", "status", "reason"]) for p in bad)
    metadata_rows.write_rejects(output, path, (f[f["status"] == filters.BAD_ROW] for f in frames))
