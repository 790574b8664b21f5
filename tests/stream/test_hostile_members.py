"""Hostile shard contents: sparse and oversized members, compressed streams, non-string captions,
fewer shards than workers. Each is skipped and counted (or capped), never read whole or fatal."""

from __future__ import annotations

import json
import logging
import tracemalloc
from pathlib import Path

import pytest
from hostile_tars import gzip_tar, members_of, plain_tar, sparse_tar, write
from synthetic import write_shards

from pipeline.base import tarsafe
from pipeline.base.augment_image import MoCoConfig
from pipeline.base.tarsafe import TarLimits, TarRefused
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.stream import PositionTracker, StreamConfig, build_loader, read_shard

BOMB = 256 << 20  # expanded size of the sparse member


def config(folder: Path, **kw) -> StreamConfig:
    base = dict(
        shards=str(folder),
        workers=0,
        shard_shuffle=False,
        shuffle_buffer=0,
        max_skipped_fraction=1.0,
        image=MoCoConfig(size=16),
    )
    return StreamConfig(**{**base, **kw})


def run_epoch(folder: Path, batch_size: int = 2, **kw) -> PositionTracker:
    cfg = config(folder, **kw)
    loader = build_loader(cfg, CaptionTokenizer.from_file(folder, context_length=16), batch_size)
    tracker = PositionTracker(loader.workers)
    for batch in loader.epoch(0):
        tracker.update(batch.position)
    return tracker


@pytest.fixture
def sparse_shard(tmp_path) -> Path:
    """Two shards of 6; in the second, the first sample's image is a 256 MiB sparse member."""
    paths = write_shards(tmp_path, [6, 6])
    items = members_of(paths[1])
    write(paths[1], sparse_tar([], items[0][0], BOMB, items[1:]))
    return tmp_path


@pytest.mark.timeout(60)
def test_sparse_member_is_never_expanded(sparse_shard):
    tracemalloc.start()
    samples = list(read_shard(str(sparse_shard / "00001.tar")))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, f"{peak} bytes traced reading a 12 KB shard"
    assert len(samples) == 6 and "sparse member" in samples[0][tarsafe.BAD_KEY]
    assert all(tarsafe.BAD_KEY not in s for s in samples[1:])


@pytest.mark.timeout(60)
def test_loader_skips_and_counts_the_sparse_sample(sparse_shard):
    tracker = run_epoch(sparse_shard, samples_per_epoch=10)
    assert tracker.batches == 5 and tracker.skipped == 1


@pytest.mark.timeout(60)
def test_gzip_stream_named_tar_is_refused(tmp_path):
    paths = write_shards(tmp_path, [6, 6])
    write(paths[1], gzip_tar(members_of(paths[1])))
    with pytest.raises(TarRefused, match="gzip-compressed"):
        list(read_shard(str(paths[1])))
    tracker = run_epoch(tmp_path, samples_per_epoch=12)
    assert tracker.skipped == 6  # the whole refused shard counts as lost against sizes.json
    allowed = list(read_shard(str(paths[1]), TarLimits(compressed=True)))
    assert len(allowed) == 6


def test_member_over_the_cap_is_skipped(tmp_path):
    paths = write_shards(tmp_path, [4])
    items = members_of(paths[0])
    big = [(n, d + b"\0" * 30_000) if n.endswith(".jpg") and i == 0 else (n, d) for i, (n, d) in enumerate(items)]
    write(paths[0], plain_tar(big))
    samples = list(read_shard(str(paths[0]), TarLimits(max_member_mb=0.02)))
    assert "over data.tar.max_member_mb=0.02" in samples[0][tarsafe.BAD_KEY]
    assert sum(tarsafe.BAD_KEY in s for s in samples) == 1
    assert run_epoch(tmp_path, tar=TarLimits(max_member_mb=0.02), samples_per_epoch=2).skipped == 1


@pytest.mark.parametrize("meta", [5, ["a", "b"], {"a": 1}, "text", None, True])
def test_non_string_json_caption_is_a_counted_skip(tmp_path, meta):
    paths = write_shards(tmp_path, [4], variants=False)
    items = members_of(paths[0])
    first_key = items[0][0].split(".")[0]
    changed = []
    for name, data in items:
        if name.startswith(first_key) and name.endswith((".txt", ".json")):
            if name.endswith(".json"):
                changed.append((name, json.dumps({"caption": meta}).encode()))
            continue
        changed.append((name, data))
    write(paths[0], plain_tar(changed))
    tracker = run_epoch(tmp_path, samples_per_epoch=2, variant_prob=0.0)
    assert tracker.batches == 1 and tracker.skipped == (meta != "text")


def test_variants_that_are_not_a_list_are_ignored(tmp_path):
    paths = write_shards(tmp_path, [4])
    items = [(n, b'{"a": 1}' if n.endswith("variants.json") else d) for n, d in members_of(paths[0])]
    write(paths[0], plain_tar(items))
    tracker = run_epoch(tmp_path, variant_prob=1.0)
    assert tracker.batches == 2 and tracker.skipped == 0


def test_fewer_shards_than_workers_caps_the_workers(tmp_path, caplog):
    write_shards(tmp_path, [8, 8])
    with caplog.at_level(logging.WARNING, logger="pipeline.stream"):
        tracker = run_epoch(tmp_path, batch_size=4, workers=4)
    assert tracker.batches == 4 and tracker.workers == 2
    notes = [r.getMessage() for r in caplog.records if "capped" in r.getMessage()]
    assert notes == ["data.workers=4 capped at 2: 2 shard(s) feed at most 2 reader(s) per rank"]


def test_too_few_shards_for_the_ranks_still_raises(tmp_path):
    write_shards(tmp_path, [8])
    with pytest.raises(ValueError, match=r"1 shard\(s\) cannot feed 2 rank\(s\)"):
        build_loader(
            config(tmp_path, workers=2),
            CaptionTokenizer.from_file(tmp_path, context_length=16),
            2,
            rank=0,
            world_size=2,
        )


def test_resume_with_a_tracker_of_the_requested_workers_is_exact(tmp_path):
    write_shards(tmp_path, [8, 8])
    cfg = config(tmp_path, workers=4)
    loader = build_loader(cfg, CaptionTokenizer.from_file(tmp_path, context_length=16), 2, seed=1)
    full = list(loader.epoch(0))
    tracker = PositionTracker(cfg.workers)  # what a trainer holding data.workers=4 keeps
    for batch in full[:3]:
        tracker.update(batch.position)
    resumed = list(loader.epoch(0, tracker.state()))
    assert [b.tokens.tolist() for b in resumed] == [b.tokens.tolist() for b in full[3:]]


def eval_set(folder: Path, tar: bytes) -> Path:
    write(folder / "test" / "0.tar", tar)
    (folder / "classnames.txt").write_text("red\ngreen\n")
    return folder


@pytest.mark.timeout(60)
def test_wds_eval_set_reads_within_limits(tmp_path):
    from lightclip.evaluation.wds_data import open_wds_classification
    from pipeline.base.augment_image import eval_transform

    good = members_of(write_shards(tmp_path / "src", [2])[0])
    good = [
        (n.replace(".txt", ".cls"), b"1" if n.endswith(".txt") else d) for n, d in good if n.endswith((".jpg", ".txt"))
    ]
    plain = open_wds_classification(eval_set(tmp_path / "plain", plain_tar(good)), eval_transform(16))
    assert [int(label) for _, label in plain.dataset] == [1, 1]
    tracemalloc.start()
    bomb = open_wds_classification(eval_set(tmp_path / "bomb", sparse_tar([], "k.png", BOMB, good)), eval_transform(16))
    with pytest.raises(ValueError, match="sparse member"):
        list(bomb.dataset)
    assert tracemalloc.get_traced_memory()[1] < 8 << 20
    tracemalloc.stop()
    packed = open_wds_classification(eval_set(tmp_path / "gz", gzip_tar(good)), eval_transform(16))
    with pytest.raises(TarRefused, match="gzip-compressed"):
        list(packed.dataset)


@pytest.mark.parametrize("caption", [5, ["a"], {"a": 1}, None])
def test_tokenizer_names_a_caption_that_is_not_a_string(tmp_path, caption):
    write_shards(tmp_path, [1])
    with pytest.raises(TypeError, match=f"caption 1 is a {type(caption).__name__}, not a string"):
        CaptionTokenizer.from_file(tmp_path, context_length=16).encode(["a red circle", caption])
