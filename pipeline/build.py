"""``build(config)``: url/caption metadata -> WebDataset shards, manifest, stats and tokenizer.

Stages (each a plain function run as Dask tasks by :mod:`pipeline.cluster`; each writes its
output atomically under ``OUT/_work`` so a rerun skips finished work):

1. filter   one task per input partition: keys, caption cleaning, word bounds, URL guard
2. dedup    exact URL duplicates across the whole input (first occurrence wins)
3. download one task per unit of ``download.samples_per_unit`` rows (img2dataset, threads)
   augment  one task per input partition: K caption variants (nlpaug), beside the downloads
4. shards   one task per final shard, then stats.json, tokenizer.json, manifest.json (last)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import augment_text, cluster, download, filters, metadata, outcomes
from pipeline.augment_text import AugmentConfig
from pipeline.base import shards
from pipeline.base.configs import save_resolved, to_dict
from pipeline.base.shards import ShardConfig
from pipeline.base.tokenizer import TOKENIZER_FILE, train_tokenizer
from pipeline.bounds import Bound, check_bounds
from pipeline.cluster import ClusterConfig
from pipeline.download import DownloadConfig
from pipeline.filters import FilterConfig
from pipeline.metadata import MetadataConfig

WORK_DIR = "_work"
RECIPE_FILE = "build_recipe.yaml"
FINGERPRINT_FILE = "fingerprint.json"
MAX_ERROR_KINDS = 50


@dataclass
class TokenizerConfig:
    """BPE trained on kept captions and variants; ``max_texts`` 0 = all of them."""

    vocab_size: int = 32000  # BPE vocabulary size, special tokens included
    min_frequency: int = 2  # a merge must occur this often
    max_texts: int = 0  # captions and variants to train on (0: all)


@dataclass
class BuildConfig:
    output: str = ""  # folder for the shards, manifest.json, stats.json and tokenizer.json
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    keep_work: bool = True  # keep OUT/_work (downloaded units) after the shards are final
    progress: bool = True  # progress bars


@dataclass
class BuildResult:
    output: Path
    shards: list[str]
    total_samples: int
    stats: dict[str, Any]
    manifest: dict[str, Any]
    skipped: bool = False  # the output was already complete for this recipe


class BuildError(RuntimeError):
    """A build that cannot start or finish; the message says what to change."""


# ------------------------------------------------------------------ work-dir layout


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


# ------------------------------------------------------------------ task functions (plain)


def filter_task(
    raw: pd.DataFrame | None, partition: int, work: Work, meta: MetadataConfig, config: FilterConfig
) -> tuple[int, np.ndarray]:
    """Stage 1 for one input partition -> (row count, URL digests of the rows still kept)."""
    path = work.filtered(partition)
    if path.is_file():
        frame = pd.read_parquet(path)
    else:
        frame = filters.apply_filters(metadata.normalise_partition(raw, partition, meta), config)
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
    if not download.is_done(folder):
        download.download_unit(unit_rows(work, partition, unit, config.samples_per_unit), folder, config, allow_hosts)
    samples = download.read_samples(folder)
    errors = samples.loc[samples["status"] == download.DOWNLOAD_FAILED, "error"].value_counts()
    return {
        "rows": download.read_result(folder).rows,
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
    parts = [download.read_samples(work.unit(partition, unit)) for unit in units]
    samples = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=download.SAMPLE_COLUMNS)
    return outcomes.write_outcomes(output, partition, outcomes.partition_outcomes(rows, samples, config))


def check_outcomes(counts: list[dict[str, int]], stats: dict[str, Any]) -> None:
    """The per-row files count exactly what stats.json counts."""
    rows = merge_counts(counts)
    expected = {name: count for name, count in stats["statuses"].items() if count}
    if rows != expected:
        raise BuildError(f"internal: per-row outcomes {rows} differ from stats.json {expected}")


def kept_samples(work: Work, partition: int, unit: int) -> pd.DataFrame:
    """Downloaded samples of a unit joined with their metadata and variants, in key order."""
    samples = download.read_samples(work.unit(partition, unit))
    samples = samples[samples["status"] == download.KEPT]
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
        image=download.read_image(folder, int(row["offset"]), int(row["length"])),
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


# ------------------------------------------------------------------ planning (plain)


def plan_pieces(unit_kept: list[tuple[int, int, int]], samples_per_shard: int) -> list[list[tuple[int, int, int, int]]]:
    """Cut the units' kept samples, in order, into shards of a fixed size.

    ``unit_kept`` is [(partition, unit, kept count)]; returns per shard
    [(partition, unit, start, stop)] slices of the units' kept samples.
    """
    offsets = np.cumsum([0] + [kept for _, _, kept in unit_kept])
    plan = []
    for positions in shards.plan_shards(int(offsets[-1]), samples_per_shard):
        pieces = []
        for (partition, unit, _), begin, end in zip(unit_kept, offsets[:-1], offsets[1:]):
            start, stop = max(begin, positions.start), min(end, positions.stop)
            if start < stop:
                pieces.append((partition, unit, int(start - begin), int(stop - begin)))
        plan.append(pieces)
    return plan


def stage3_order(units: list[tuple[int, int]], augment: bool = True) -> list[tuple[str, Any]]:
    """Stage 3's tasks in submission order: with ``augment``, each partition's augment task
    right after its first download unit, so the captions (WordNet takes seconds to load) are
    drawn beside the downloads from the start, not after all of them."""
    order: list[tuple[str, Any]] = []
    for partition, unit in units:
        order.append(("download", (partition, unit)))
        if augment and unit == 0:
            order.append(("augment", partition))
    return order


def merge_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return dict(total)


def summarise(total_rows: int, dedup: list[dict], units: list[dict]) -> dict[str, Any]:
    """stats.json: every input row under exactly one status (checked)."""
    statuses = merge_counts([d["statuses"] for d in dedup])
    passed = statuses.pop(filters.KEPT, 0)
    downloaded = merge_counts([u["statuses"] for u in units])
    missing = passed - sum(downloaded.values())  # rows img2dataset dropped without a record
    if missing:
        downloaded[download.DOWNLOAD_FAILED] = downloaded.get(download.DOWNLOAD_FAILED, 0) + missing
    every = (download.KEPT, *filters.FILTER_STATUSES, *download.DOWNLOAD_STATUSES)
    merged = {name: statuses.get(name, 0) + downloaded.get(name, 0) for name in every}
    if sum(merged.values()) != total_rows:
        raise BuildError(f"internal: {sum(merged.values())} rows counted for {total_rows} input rows")
    errors = Counter(merge_counts([u["errors"] for u in units]))
    return {
        "total_rows": total_rows,
        "kept": merged[download.KEPT],
        "statuses": merged,
        "unsafe_url_reasons": merge_counts([d["reasons"] for d in dedup]),
        "download_errors": dict(errors.most_common(MAX_ERROR_KINDS)),
    }


def fingerprint(config: BuildConfig) -> str:
    """Hash of the settings that decide which rows and bytes the work dir holds."""
    data = to_dict(config)
    for key in ("output", "cluster", "shards", "tokenizer", "keep_work", "progress"):
        data.pop(key)
    for key in ("thread_count", "timeout", "retries"):
        data["download"].pop(key)
    path = Path(config.metadata.path)
    data["metadata_bytes"] = path.stat().st_size if path.is_file() else None
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _check_work(work: Work, stamp: str) -> None:
    path = work.root / FINGERPRINT_FILE
    if path.is_file() and json.loads(path.read_text())["fingerprint"] != stamp:
        raise BuildError(
            f"{work.root} holds work from a different recipe or metadata file; "
            f"use another output folder or delete {work.root} to start over"
        )
    work.root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fingerprint": stamp}))


def _finished(output: Path, stamp: str) -> dict | None:
    try:
        manifest = shards.read_json(output, shards.MANIFEST_FILE)
    except FileNotFoundError:
        return None
    names = [entry["name"] for entry in manifest.get("shards", [])]
    complete = all((output / name).is_file() for name in names)
    return manifest if complete and manifest.get("fingerprint") == stamp else None


def _refuse_other_build(output: Path, stamp: str) -> None:
    """A finished output of another recipe or metadata file is never rebuilt in place (its
    ``_work`` may be gone, and the new build would silently replace its shards)."""
    try:
        manifest = shards.read_json(output, shards.MANIFEST_FILE)
    except FileNotFoundError:
        return
    if manifest.get("fingerprint") != stamp:
        raise BuildError(
            f"{output} holds a finished build ({manifest.get('total_samples', '?')} samples) of a "
            f"different recipe or metadata file; use another output folder, or delete {output} to rebuild"
        )


def check_kept(stats: dict[str, Any], output: Path) -> None:
    """Stop when no row survived: an empty build is a mistake, not a result to train on."""
    if stats["kept"]:
        return
    counts = sorted(((n, c) for n, c in stats["statuses"].items() if c), key=lambda item: -item[1])
    why = ", ".join(f"{count} {name}" for name, count in counts[:3])
    reasons = ", ".join(f"{reason}: {count}" for reason, count in stats["unsafe_url_reasons"].items())
    hint = f" ({reasons}; a host you serve yourself needs filters.allow_hosts)" if reasons else ""
    raise BuildError(
        f"no sample kept: 0 of {stats['total_rows']} rows ({why}{hint}); the counts are in {output / shards.STATS_FILE}"
    )


def texts_for_tokenizer(work: Work, units: list[tuple[int, int, int]], limit: int):
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


def _write_rejects(output: Path, path: str, work: Work, dedup: list[dict]) -> None:
    """``rejects.jsonl``: file, line and error of every bad metadata row."""
    bad = [p for p, d in enumerate(dedup) if d["statuses"].get(filters.BAD_ROW)]
    frames = (pd.read_parquet(work.rows(p), columns=["key", "status", "reason"]) for p in bad)
    metadata.write_rejects(output, path, (f[f["status"] == filters.BAD_ROW] for f in frames))


RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
BOUNDS: tuple[Bound, ...] = (  # every number a build reads
    ("metadata.max_line_bytes", 64, 2**30),
    ("metadata.max_json_depth", 1, 1000),
    ("filters.min_words", 0, None),
    ("filters.max_words", 0, None),
    ("download.image_size", 1, 16384),
    ("download.encode_quality", 0, 100),
    ("download.min_image_size", 0, None),
    ("download.max_image_area", 0, None),
    ("download.max_aspect_ratio", 0, None),
    ("download.timeout", 0.001, 86400),
    ("download.max_bytes", 0, None),
    ("download.retries", 0, 100),
    ("download.thread_count", 1, 1024),
    ("download.samples_per_unit", 1, 10**metadata.ROW_DIGITS - 1),
    ("filters.min_latin_share", 0, 1),
    ("augment.min_latin_share", 0, 1),
    ("augment.seed", 0, None),
    ("augment.variants", 0, 64),
    ("augment.aug_p", 0, 1),
    ("shards.samples_per_shard", 1, None),
    *(
        (f"augment.{m}.{key}", low, high)
        for m in ("synonym", "swap", "delete")
        for key, low, high in (("aug_p", 0, 1), ("aug_max", 1, None))
    ),
    ("augment.synonym.top_senses", 1, None),
    ("augment.synonym.min_sense_share", 0, 1),
    ("augment.synonym.min_sense_count", 0, None),
    ("augment.synonym.min_zipf", 0, 10),
    ("augment.synonym.min_length", 0, None),
    ("tokenizer.vocab_size", 260, 2**24),
    ("tokenizer.min_frequency", 0, None),
    ("tokenizer.max_texts", 0, None),
    ("cluster.n_workers", 0, 1024),
    ("cluster.threads_per_worker", 1, 1024),
)


def check_settings(config: BuildConfig) -> None:
    """Every number and name of the recipe in range: one line (exit 2) before anything is written."""
    if not config.output:
        raise BuildError("output is empty: pass output=FOLDER (or OUT= to make data)")
    check_bounds(config, BOUNDS)
    if config.filters.max_words and config.filters.max_words < config.filters.min_words:
        raise BuildError(
            f"filters.max_words={config.filters.max_words} is below filters.min_words="
            f"{config.filters.min_words}; raise it or set 0 for no upper bound"
        )
    if config.download.resize_mode not in RESIZE_MODES:
        raise BuildError(f"download.resize_mode={config.download.resize_mode!r} is not one of {list(RESIZE_MODES)}")
    metadata.block_bytes(config.metadata.blocksize)


def check_config(config: BuildConfig) -> None:
    check_settings(config)
    metadata.check_metadata_path(config.metadata)
    metadata.resolve_format(config.metadata)
    filters.parse_allow_hosts(config.filters.allow_hosts)
    augment_text.check_config(config.augment)
    if config.augment.variants and "synonym" in config.augment.methods:
        from pipeline.wordnet_data import require_wordnet

        require_wordnet()  # fail now, not in every worker


def with_present_columns(config: BuildConfig, log=print) -> BuildConfig:
    """``metadata.keep_columns`` that the file lacks are left out (with a note), so that one
    recipe reads YFCC's rows (url, caption, filename) and a plain url/caption file."""
    present = metadata.present_keep_columns(config.metadata)
    missing = [c for c in config.metadata.keep_columns if c not in present]
    if not missing:
        return config
    log(f"metadata.keep_columns: {missing} not in {config.metadata.path}; left out of key.json")
    return dataclasses.replace(config, metadata=dataclasses.replace(config.metadata, keep_columns=present))


# ------------------------------------------------------------------ orchestration


def build(config: BuildConfig, log=print) -> BuildResult:
    """Run (or resume) a build; returns where the shards are and what was counted."""
    check_config(config)
    config = with_present_columns(config, log)
    output = Path(config.output)
    work = Work(output / WORK_DIR)
    stamp = fingerprint(config)
    output.mkdir(parents=True, exist_ok=True)
    _refuse_other_build(output, stamp)
    manifest = _finished(output, stamp)
    if manifest is not None:
        log(f"{output} is already complete for this recipe ({manifest['total_samples']} samples)")
        stats = shards.read_json(output, shards.STATS_FILE)
        return BuildResult(
            output, [s["name"] for s in manifest["shards"]], manifest["total_samples"], stats, manifest, skipped=True
        )
    _check_work(work, stamp)
    save_resolved(config, output / RECIPE_FILE)
    shards.remove_partial(output)
    with cluster.open_client(config.cluster, log) as client:
        manifest, stats = _run_stages(client, config, work, output, stamp)
    if not config.keep_work:
        shutil.rmtree(work.root, ignore_errors=True)
        if work.root.exists():
            log(f"could not delete all of {work.root}; delete it by hand to free the space")
    log(
        f"{manifest['total_samples']} samples in {manifest['num_shards']} shards at {output}; "
        f"{stats['kept']}/{stats['total_rows']} rows kept"
    )
    return BuildResult(output, [s["name"] for s in manifest["shards"]], manifest["total_samples"], stats, manifest)


def _run_stages(client, config: BuildConfig, work: Work, output: Path, stamp: str):
    progress, per_unit = config.progress, config.download.samples_per_unit
    raw = cluster.read_table(config.metadata)
    calls = [
        (filter_task, (None if work.filtered(p).is_file() else part, p, work, config.metadata, config.filters))
        for p, part in enumerate(raw)
    ]
    filtered = cluster.run_tasks(client, calls, "filter", progress)
    total_rows = sum(rows for rows, _ in filtered)
    digests = [d for _, d in filtered]
    keep = filters.first_occurrence(digests) if config.filters.dedup_urls else [np.ones(len(d), bool) for d in digests]
    dedup = cluster.run_tasks(client, [(dedup_task, (p, k, work)) for p, k in enumerate(keep)], "dedup", progress)
    _write_rejects(output, config.metadata.path, work, dedup)
    units = [(p, u) for p, d in enumerate(dedup) for u in range(download.unit_count(d["kept"], per_unit))]
    allow = tuple(config.filters.allow_hosts)
    order = stage3_order(units, augment=bool(config.augment.variants))
    if not config.augment.variants:  # nothing to draw: the (empty) variant files are written here
        for p, u in units:
            if u == 0:
                augment_task(p, work, config.augment)
    calls = [
        (download_task, (*item, work, config.download, allow))
        if kind == "download"
        else (augment_task, (item, work, config.augment))
        for kind, item in order
    ]
    done = cluster.run_tasks(client, calls, "download+augment", progress)
    results = [r for (kind, _), r in zip(order, done) if kind == "download"]
    unit_kept = [(p, u, r["statuses"].get(download.KEPT, 0)) for (p, u), r in zip(units, results)]
    stats = summarise(total_rows, dedup, results)
    calls = [
        (outcome_task, (p, [u for q, u in units if q == p], work, str(output), config.filters))
        for p in range(len(dedup))
    ]
    check_outcomes(cluster.run_tasks(client, calls, "outcomes", progress), stats)
    if not stats["kept"]:
        shards.write_stats(output, stats)
        check_kept(stats, output)
    plan = plan_pieces(unit_kept, config.shards.samples_per_shard)
    for stale in shards.shard_paths(output)[len(plan) :]:
        stale.unlink()
    extra = list(config.metadata.keep_columns)
    infos = cluster.run_tasks(
        client,
        [(shard_task, (i, pieces, work, str(output), extra)) for i, pieces in enumerate(plan)],
        "shards",
        progress,
    )
    texts = texts_for_tokenizer(work, unit_kept, config.tokenizer.max_texts)
    tokenizer = train_tokenizer(texts, config.tokenizer.vocab_size, config.tokenizer.min_frequency)
    tokenizer.save(str(output / TOKENIZER_FILE))
    shards.write_stats(output, stats)
    manifest = shards.write_manifest(
        output,
        infos,
        {
            "fingerprint": stamp,
            "samples_per_shard": config.shards.samples_per_shard,
            "variants": config.augment.variants,
            "tokenizer": TOKENIZER_FILE,
            "stats": shards.STATS_FILE,
            "sizes": shards.SIZES_FILE,
        },
    )
    return manifest, stats
