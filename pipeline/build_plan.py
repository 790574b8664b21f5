"""The build's bookkeeping between stages: which slices of which units make each shard, the
order of stage 3's tasks, the counts of stats.json (every input row under one status), and the
recipe fingerprint that decides whether a work dir or a finished output may be resumed."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import filters, unitfiles
from pipeline.base import shards
from pipeline.base.configs import to_dict
from pipeline.build_tasks import MAX_ERROR_KINDS
from pipeline.buildconfig import BuildConfig, BuildError

FINGERPRINT_FILE = "fingerprint.json"


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
        downloaded[unitfiles.DOWNLOAD_FAILED] = downloaded.get(unitfiles.DOWNLOAD_FAILED, 0) + missing
    every = (unitfiles.KEPT, *filters.FILTER_STATUSES, *unitfiles.DOWNLOAD_STATUSES)
    merged = {name: statuses.get(name, 0) + downloaded.get(name, 0) for name in every}
    if sum(merged.values()) != total_rows:
        raise BuildError(f"internal: {sum(merged.values())} rows counted for {total_rows} input rows")
    errors = Counter(merge_counts([u["errors"] for u in units]))
    return {
        "total_rows": total_rows,
        "kept": merged[unitfiles.KEPT],
        "statuses": merged,
        "unsafe_url_reasons": merge_counts([d["reasons"] for d in dedup]),
        "download_errors": dict(errors.most_common(MAX_ERROR_KINDS)),
    }


def check_outcomes(counts: list[dict[str, int]], stats: dict[str, Any]) -> None:
    """The per-row files count exactly what stats.json counts."""
    rows = merge_counts(counts)
    expected = {name: count for name, count in stats["statuses"].items() if count}
    if rows != expected:
        raise BuildError(f"internal: per-row outcomes {rows} differ from stats.json {expected}")


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


def check_work(root: Path, stamp: str) -> None:
    """Refuse a work dir of another recipe or metadata file; stamp it with ``stamp``."""
    path = root / FINGERPRINT_FILE
    if path.is_file() and json.loads(path.read_text())["fingerprint"] != stamp:
        raise BuildError(
            f"{root} holds work from a different recipe or metadata file; "
            f"use another output folder or delete {root} to start over"
        )
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fingerprint": stamp}))


def finished_manifest(output: Path, stamp: str) -> dict | None:
    try:
        manifest = shards.read_json(output, shards.MANIFEST_FILE)
    except FileNotFoundError:
        return None
    names = [entry["name"] for entry in manifest.get("shards", [])]
    complete = all((output / name).is_file() for name in names)
    return manifest if complete and manifest.get("fingerprint") == stamp else None


def refuse_other_build(output: Path, stamp: str) -> None:
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
