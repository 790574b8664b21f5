"""The loader half of the split path and its batches against the per-sample reference."""

import pickle

import pytest
import torch
from augment_fixtures import photo
from torch.utils.data import default_collate

from pipeline.base.augment_image import (
    CLIP_MEAN,
    CLIP_STD,
    MoCoConfig,
    SplitSample,
    collate_split,
    moco_transform,
    split_worker_transform,
)
from pipeline.base.photometric import NUM_PARAMS, apply_photometric

SIZE = 64


def _pair(config: MoCoConfig, seed: int = 9, count: int = 12, epoch: int = 1):
    """Reference batch and split batch for the same seeded samples."""
    images = [photo(110 + 7 * i, 90 + 5 * i, seed=i) for i in range(count)]
    reference = moco_transform(config, seed=seed)
    worker = split_worker_transform(config, seed=seed)
    ref = torch.stack([reference(im, key=f"k{i}", epoch=epoch) for i, im in enumerate(images)])
    batch = collate_split([worker(im, key=f"k{i}", epoch=epoch) for i, im in enumerate(images)])
    return ref, batch


def test_worker_output_shapes_and_dtypes():
    worker = split_worker_transform(MoCoConfig(size=SIZE), seed=0)
    sample = worker(photo(), key="a")
    assert isinstance(sample, SplitSample)
    assert sample.image.dtype == torch.uint8 and sample.image.shape == (3, SIZE, SIZE)
    assert sample.image.is_contiguous()
    assert sample.params.dtype == torch.float32 and sample.params.shape == (NUM_PARAMS,)
    grey = worker(photo().convert("L"), key="a")  # non-RGB input is converted
    assert grey.image.shape == (3, SIZE, SIZE)


def test_worker_is_picklable_and_deterministic_after_pickling():
    worker = split_worker_transform(MoCoConfig(size=SIZE), seed=4)
    clone = pickle.loads(pickle.dumps(worker))
    a, b = worker(photo(), key="x", epoch=2), clone(photo(), key="x", epoch=2)
    assert torch.equal(a.image, b.image) and torch.equal(a.params, b.params)


def test_unseeded_worker_uses_the_global_generator():
    worker = split_worker_transform(MoCoConfig(size=SIZE))
    torch.manual_seed(1)
    first = worker(photo(), key="x")
    torch.manual_seed(1)
    assert torch.equal(first.params, worker(photo(), key="x").params)
    assert not torch.equal(first.params, worker(photo(), key="x").params)


def test_collate_split_and_default_collate_agree():
    worker = split_worker_transform(MoCoConfig(size=SIZE), seed=0)
    samples = [worker(photo(seed=i), key=i) for i in range(5)]
    batch = collate_split(samples)
    assert batch.image.shape == (5, 3, SIZE, SIZE) and batch.image.dtype == torch.uint8
    assert batch.params.shape == (5, NUM_PARAMS)
    via_torch = default_collate(samples)
    assert torch.equal(via_torch.image, batch.image) and torch.equal(via_torch.params, batch.params)
    with pytest.raises(ValueError, match="at least one"):
        collate_split([])


def test_split_equals_reference_without_photometric_ops():
    config = MoCoConfig(size=SIZE, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    ref, batch = _pair(config)
    out = apply_photometric(batch.image, batch.params, config)
    assert (out - ref).abs().max().item() < 1e-5  # same crops, flips and normalisation
    assert batch.params[:, -1].sum() > 0  # some samples were flipped


def test_split_batch_matches_reference_batch():
    config = MoCoConfig(size=SIZE)
    ref, batch = _pair(config, count=24)
    out = apply_photometric(batch.image, batch.params, config)
    assert out.shape == ref.shape == (24, 3, SIZE, SIZE)
    assert out.dtype == ref.dtype == torch.float32
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    unit_out, unit_ref = out * std + mean, ref * std + mean
    assert unit_out.min() >= -1e-5 and unit_out.max() <= 1 + 1e-5
    # PIL works in uint8 (and 8-bit HSV for hue) and blurs with box passes: small differences
    per_sample = (unit_out - unit_ref).abs().mean(dim=(1, 2, 3))
    assert per_sample.max().item() < 4 / 255 and per_sample.mean().item() < 2 / 255
    assert (out.mean(dim=(0, 2, 3)) - ref.mean(dim=(0, 2, 3))).abs().max() < 0.02
