"""Damaged shards: every lost sample is counted against sizes.json/manifest.json and bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import write_shards

from pipeline.base import shards, verify
from pipeline.base.augment_image import MoCoConfig
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.stream import (
    DataLossError,
    PositionTracker,
    StreamConfig,
    build_loader,
    count_samples,
)


def config(folder: Path, **kw) -> StreamConfig:
    base = dict(shards=str(folder), workers=0, shard_shuffle=False, shuffle_buffer=0, image=MoCoConfig(size=16))
    return StreamConfig(**{**base, **kw})


def tokenizer(folder: Path) -> CaptionTokenizer:
    return CaptionTokenizer.from_file(folder, context_length=16)


def complete_samples(path: Path) -> int:
    """Samples of a (possibly cut) tar that still hold every member and a decodable image."""
    good = 0
    try:
        for sample in shards.iter_samples(path):
            good += verify.check_sample(sample) is None
    except Exception:  # noqa: BLE001 - a cut tar ends with an error; count what came before
        pass
    return good


@pytest.fixture
def cut(tmp_path) -> tuple[Path, int]:
    """Two shards of 64; the second cut at 60% of its bytes. Returns (folder, its good samples)."""
    paths = write_shards(tmp_path, [64, 64])
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: int(len(data) * 0.6)])
    return tmp_path, complete_samples(paths[1])


def test_cut_shard_counts_every_lost_sample(cut):
    folder, good = cut
    assert 30 <= good <= 40  # 60% of the bytes, the last sample partial
    cfg = config(folder, samples_per_epoch=128, max_skipped_fraction=1.0)
    tracker = PositionTracker(workers=0)
    for batch in build_loader(cfg, tokenizer(folder), batch_size=8).epoch(0):
        tracker.update(batch.position)
    # 64 good samples of shard 0, `good` of shard 1, then shard 0 again (not to its end)
    assert tracker.batches == 16
    assert tracker.skipped == 64 - good


@pytest.mark.parametrize("workers", [0, 1])
def test_loss_past_the_bound_stops_with_one_line(cut, workers):
    folder, _ = cut
    cfg = config(folder, samples_per_epoch=128, workers=workers)  # default bound: 1%
    with pytest.raises(DataLossError) as caught:
        list(build_loader(cfg, tokenizer(folder), batch_size=8).epoch(0))
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert "data.max_skipped_fraction" in message and "pipeline verify" in message


def test_bound_allows_what_it_says(cut):
    folder, good = cut
    lost = 64 - good
    fraction = (lost + 0.5) / 128
    cfg = config(folder, samples_per_epoch=128, max_skipped_fraction=fraction)
    assert len(list(build_loader(cfg, tokenizer(folder), batch_size=8).epoch(0))) == 16
    tight = config(folder, samples_per_epoch=128, max_skipped_fraction=(lost - 0.5) / 128)
    with pytest.raises(DataLossError):
        list(build_loader(tight, tokenizer(folder), batch_size=8).epoch(0))


def test_manifest_without_sizes_json_is_read(tmp_path):
    write_shards(tmp_path, [5, 7])
    manifest = json.loads((tmp_path / shards.MANIFEST_FILE).read_text())
    assert [e[shards.SHARD_SAMPLES_FIELD] for e in manifest[shards.MANIFEST_SHARDS]] == [5, 7]
    (tmp_path / shards.SIZES_FILE).unlink()
    urls = shards.expand_spec(str(tmp_path))
    assert count_samples(urls) == 12
    assert shards.expected_counts(urls) == {urls[0]: 5, urls[1]: 7}
    assert len(list(build_loader(config(tmp_path), tokenizer(tmp_path), batch_size=4).epoch(0))) == 3


def test_spec_helpers(tmp_path):
    write_shards(tmp_path / "a", [3, 3])
    spec = f"{tmp_path}/a/{{00000..00001}}.tar {shards.SPEC_SEPARATOR} {tmp_path / 'a'}"  # spaces are stripped
    assert shards.split_spec(spec) == [f"{tmp_path}/a/{{00000..00001}}.tar", str(tmp_path / "a")]
    assert len(shards.expand_spec(spec)) == 4
    assert shards.spec_folder(spec) == tmp_path / "a"
    assert shards.spec_folder(str(tmp_path / "a")) == tmp_path / "a"
