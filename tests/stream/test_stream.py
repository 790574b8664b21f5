"""The streaming loader: shapes, seeding, bad data, rank balance, resume."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch
from synthetic import add, write_shards

from pipeline.base.augment_image import MoCoConfig
from pipeline.base.shards import SPEC_SEPARATOR
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.stream import (
    PositionTracker,
    StreamConfig,
    build_loader,
    expand_shards,
    finish_images,
    reader_quota,
)


def config(folder: Path, **kw) -> StreamConfig:
    base = dict(shards=str(folder), workers=0, shuffle_buffer=20, shuffle_initial=5, image=MoCoConfig(size=32))
    return StreamConfig(**{**base, **kw})


def tokenizer(folder: Path) -> CaptionTokenizer:
    return CaptionTokenizer.from_file(folder, context_length=16)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, [24, 16, 20, 12])
    return folder


@pytest.mark.parametrize("split", [True, False])
def test_batch_shapes_and_dtypes(shards, split):
    cfg = config(shards, image=MoCoConfig(size=32, split=split))
    loader = build_loader(cfg, tokenizer(shards), batch_size=8, seed=0)
    batches = list(loader.epoch(0))
    assert len(batches) == loader.num_batches == 72 // 8
    images = finish_images(batches[0], cfg.image, "cpu")
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    tokens = batches[0].tokens
    assert tokens.shape == (8, 16) and tokens.dtype == torch.int64
    assert (tokens[:, 0] == 2).all() and ((tokens == 3).sum(dim=1) == 1).all()


def test_epochs_differ_but_are_reproducible(shards):
    cfg = config(shards, shard_shuffle=False, shuffle_buffer=0, variant_prob=0.0)
    loader = build_loader(cfg, tokenizer(shards), batch_size=8, seed=3)
    first, again, second = (next(iter(loader.epoch(e))) for e in (0, 0, 1))
    assert torch.equal(first.tokens, second.tokens)  # same samples in the same order
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, second.images)  # another augmentation per epoch


def test_variants_are_picked(shards):
    cfg = config(shards, shard_shuffle=False, shuffle_buffer=0, variant_prob=1.0)
    plain = config(shards, shard_shuffle=False, shuffle_buffer=0, variant_prob=0.0)
    tok = tokenizer(shards)
    a = next(iter(build_loader(cfg, tok, 8).epoch(0))).tokens
    b = next(iter(build_loader(plain, tok, 8).epoch(0))).tokens
    assert not torch.equal(a, b)


def test_corrupt_member_and_truncated_shard_are_skipped_and_counted(tmp_path):
    paths = write_shards(tmp_path, [12, 12, 12])
    with tarfile.open(paths[1], "a") as tar:  # a sample whose image is not an image
        add(tar, "zzbad.jpg", b"not a jpeg at all")
        add(tar, "zzbad.txt", b"a broken sample")
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 2 + 100])  # cut mid-member
    cfg = config(tmp_path, shuffle_buffer=0, samples_per_epoch=60, max_skipped_fraction=1.0)
    loader = build_loader(cfg, tokenizer(tmp_path), batch_size=4)
    tracker = PositionTracker(workers=0)
    for batch in loader.epoch(0):
        tracker.update(batch.position)
        assert torch.isfinite(finish_images(batch, cfg.image, "cpu")).all()
    assert tracker.batches == 15
    assert tracker.skipped >= 2  # the bad member and (at least once) the truncated shard


def test_equal_batches_on_two_ranks_with_uneven_shards(tmp_path):
    write_shards(tmp_path, [40, 4, 8, 30])
    counts = []
    for rank in range(2):
        loader = build_loader(config(tmp_path, workers=2), tokenizer(tmp_path), 6, rank=rank, world_size=2)
        batches = list(loader.epoch(0))
        assert all(b.images.shape[0] == 6 and b.tokens.shape[0] == 6 for b in batches)
        counts.append(len(batches))
    assert counts == [82 // 12, 82 // 12]


def test_too_few_shards_for_readers_caps_the_workers(tmp_path):
    write_shards(tmp_path, [10, 10])
    capped = build_loader(config(tmp_path, workers=2), tokenizer(tmp_path), 2, rank=0, world_size=2)
    assert capped.workers == 1 and len(list(capped.epoch(0))) == 5
    resampled = build_loader(config(tmp_path, workers=2, resampled=True), tokenizer(tmp_path), 2, rank=1, world_size=2)
    assert len(list(resampled.epoch(0))) == 5


@pytest.mark.parametrize("consumed", [3, 4])
def test_mid_epoch_resume_is_exact(shards, consumed):
    cfg = config(shards, workers=2)
    loader = build_loader(cfg, tokenizer(shards), batch_size=4, seed=5)
    full = list(loader.epoch(1))
    tracker = PositionTracker(cfg.workers, epoch=1)
    for batch in full[:consumed]:
        tracker.update(batch.position)
    resumed = list(loader.epoch(1, tracker.state()))
    assert len(resumed) == len(full) - consumed
    for a, b in zip(resumed, full[consumed:]):
        assert torch.equal(a.images, b.images) and torch.equal(a.tokens, b.tokens)


def test_shard_specs(shards):
    both = expand_shards(SPEC_SEPARATOR.join([f"{shards}/{{00000..00001}}.tar", str(shards)]))
    assert len(both) == 6 and both[0].endswith("00000.tar")
    with pytest.raises(ValueError, match="no shards"):
        expand_shards("")


def test_reader_quota_sums_to_total():
    assert [reader_quota(11, w, 3) for w in range(3)] == [4, 4, 3]


@pytest.mark.parametrize("resampled", [False, True])
def test_unreadable_shards_raise_instead_of_looping(tmp_path, resampled):
    paths = write_shards(tmp_path, [8, 8])
    for path in paths:
        path.write_bytes(b"this is not a tar file" * 10)
    loader = build_loader(config(tmp_path, resampled=resampled, max_skipped_fraction=1.0), tokenizer(tmp_path), 4)
    with pytest.raises(RuntimeError, match="hold no readable samples"):
        list(loader.epoch(0))
