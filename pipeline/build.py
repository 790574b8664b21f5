"""``build(config)``: url/caption metadata -> WebDataset shards, manifest, stats and tokenizer.

Stages (each a plain function run as Dask tasks by :mod:`pipeline.cluster`; each writes its
output atomically under ``OUT/_work`` so a rerun skips finished work):

1. filter   one task per input partition: keys, caption cleaning, word bounds, URL guard
2. dedup    exact URL duplicates across the whole input (first occurrence wins)
3. download one task per unit of ``download.samples_per_unit`` rows (img2dataset, threads)
   augment  one task per input partition: K caption variants (nlpaug), beside the downloads
4. shards   one task per final shard, then stats.json, tokenizer.json, manifest.json (last)

The recipe and its start-up checks are in :mod:`pipeline.buildconfig`, the stage functions in
:mod:`pipeline.build_tasks`, the bookkeeping between stages in :mod:`pipeline.build_plan`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import cluster, filters, unitfiles
from pipeline.base import shards
from pipeline.base.configs import save_resolved
from pipeline.base.tokenizer import TOKENIZER_FILE, train_tokenizer
from pipeline.build_plan import (
    check_kept,
    check_outcomes,
    check_work,
    fingerprint,
    finished_manifest,
    plan_pieces,
    refuse_other_build,
    stage3_order,
    summarise,
)
from pipeline.build_tasks import (
    Work,
    augment_task,
    dedup_task,
    download_task,
    filter_task,
    outcome_task,
    shard_task,
    texts_for_tokenizer,
    write_rejects,
)
from pipeline.buildconfig import BuildConfig, BuildError, TokenizerConfig, check_config, with_present_columns

__all__ = ["WORK_DIR", "BuildConfig", "BuildError", "BuildResult", "TokenizerConfig", "build"]

WORK_DIR = "_work"
RECIPE_FILE = "build_recipe.yaml"


@dataclass
class BuildResult:
    output: Path
    shards: list[str]
    total_samples: int
    stats: dict[str, Any]
    manifest: dict[str, Any]
    skipped: bool = False  # the output was already complete for this recipe


def build(config: BuildConfig, log=print) -> BuildResult:
    """Run (or resume) a build; returns where the shards are and what was counted."""
    check_config(config)
    config = with_present_columns(config, log)
    output = Path(config.output)
    work = Work(output / WORK_DIR)
    stamp = fingerprint(config)
    output.mkdir(parents=True, exist_ok=True)
    refuse_other_build(output, stamp)
    manifest = finished_manifest(output, stamp)
    if manifest is not None:
        log(f"{output} is already complete for this recipe ({manifest['total_samples']} samples)")
        stats = shards.read_json(output, shards.STATS_FILE)
        return BuildResult(
            output, [s["name"] for s in manifest["shards"]], manifest["total_samples"], stats, manifest, skipped=True
        )
    check_work(work.root, stamp)
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
    write_rejects(output, config.metadata.path, work, dedup)
    units = [(p, u) for p, d in enumerate(dedup) for u in range(unitfiles.unit_count(d["kept"], per_unit))]
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
    unit_kept = [(p, u, r["statuses"].get(unitfiles.KEPT, 0)) for (p, u), r in zip(units, results)]
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
