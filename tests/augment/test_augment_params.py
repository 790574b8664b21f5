"""Parameter draws: distributions against the reference transform, seeding, both paths agree."""

import itertools
import math

import pytest
import torch
from augment_fixtures import photo
from torchvision import transforms as T

from pipeline.base.augment_image import (
    MoCoConfig,
    draw_params,
    moco_transform,
    sample_rng,
    sample_seed,
    split_worker_transform,
)
from pipeline.base.photometric import PARAM_INDEX

N = 10_000
CONFIG = MoCoConfig()


@pytest.fixture(scope="module")
def draws():
    g = torch.Generator().manual_seed(123)
    return [draw_params(CONFIG, 256, 256, g) for _ in range(N)]


def _rate(values) -> float:
    return sum(map(bool, values)) / len(values)


@pytest.mark.parametrize("field, p", [("jitter", 0.8), ("grayscale", 0.2), ("blur", 0.5), ("flip", 0.5)])
def test_apply_probabilities(draws, field, p):
    assert abs(_rate([getattr(d, field) for d in draws]) - p) <= 0.015


def test_ranges_and_orders(draws):
    factors = torch.tensor([d.factors for d in draws], dtype=torch.float64)  # (N, 4)
    assert factors[:, :3].min() >= 0.6 and factors[:, :3].max() <= 1.4
    assert factors[:, 3].min() >= -0.1 and factors[:, 3].max() <= 0.1
    for column, (lo, hi) in enumerate([(0.6, 1.4)] * 3 + [(-0.1, 0.1)]):
        span = hi - lo  # uniform: all deciles populated, mean at the centre
        assert abs(factors[:, column].mean().item() - (lo + hi) / 2) < 0.02 * span
        counts = torch.histc(factors[:, column].float(), bins=10, min=lo, max=hi)
        assert counts.min() > 0.08 * N and counts.max() < 0.12 * N
    sigmas = torch.tensor([d.sigma for d in draws])
    assert sigmas.min() >= 0.1 and sigmas.max() <= 2.0 and abs(sigmas.mean() - 1.05) < 0.03
    orders = {d.order for d in draws}
    assert orders == set(itertools.permutations(range(4)))  # all 24 appear


def _crop_stats(boxes, width=256, height=256):
    area = torch.tensor([h * w / (width * height) for _, _, h, w in boxes])
    log_ratio = torch.tensor([math.log(w / h) for _, _, h, w in boxes])
    centre_x = torch.tensor([(left + w / 2) / width for _, left, _, w in boxes])
    return [area, log_ratio, centre_x]


def test_crop_distribution_matches_torchvision(draws):
    torch.manual_seed(7)
    image = torch.zeros(3, 256, 256)
    reference = [T.RandomResizedCrop.get_params(image, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(N)]
    ours = [d.crop for d in draws]
    assert all(0 <= top and 0 <= left and top + h <= 256 and left + w <= 256 for top, left, h, w in ours)
    for mine, ref in zip(_crop_stats(ours), _crop_stats(reference)):
        quantiles = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
        gap = (mine.quantile(quantiles) - ref.quantile(quantiles)).abs().max().item()
        assert gap < 0.03 * (ref.max() - ref.min()).item()


def test_jitter_factors_match_torchvision_color_jitter(draws):
    torch.manual_seed(11)
    jitter = T.ColorJitter(*CONFIG.jitter)
    ref = [
        T.ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) for _ in range(4000)
    ]
    ref_factors = torch.tensor([r[1:] for r in ref], dtype=torch.float64)
    ours = torch.tensor([d.factors for d in draws], dtype=torch.float64)
    quantiles = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    gaps = (ours.quantile(quantiles, dim=0) - ref_factors.quantile(quantiles, dim=0)).abs()
    assert gaps[:, :3].max() < 0.03 and gaps[:, 3].max() < 0.008
    ref_first = torch.tensor([r[0][0].item() for r in ref])
    ours_first = torch.tensor([d.order[0] for d in draws])
    for op in range(4):  # first op uniform over the four, like torch.randperm
        assert abs((ours_first == op).float().mean() - 0.25) < 0.015
        assert abs((ref_first == op).float().mean() - 0.25) < 0.025


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(0, 1, "00001") == sample_seed(0, 1, "00001")
    seeds = {sample_seed(s, e, k) for s in (0, 1) for e in (0, 1) for k in ("a", "b", 5)}
    assert len(seeds) == 12
    assert sample_seed(0, 0, 7) == sample_seed(0, 0, "7")  # int keys read as their text
    with pytest.raises(TypeError, match="sample key"):
        sample_seed(0, 0, 1.5)


def test_same_seed_epoch_key_gives_same_params():
    a = draw_params(CONFIG, 300, 200, sample_rng(3, 2, "k1"))
    assert a == draw_params(CONFIG, 300, 200, sample_rng(3, 2, "k1"))
    assert a != draw_params(CONFIG, 300, 200, sample_rng(3, 3, "k1"))
    assert a != draw_params(CONFIG, 300, 200, sample_rng(3, 2, "k2"))


def test_both_paths_draw_identical_params():
    image = photo(120, 90)
    worker = split_worker_transform(CONFIG, seed=5)
    params = [worker(image, key=f"s{i}", epoch=4).params for i in range(20)]
    for i, row in enumerate(params):
        expected = draw_params(CONFIG, 120, 90, sample_rng(5, 4, f"s{i}"))
        assert torch.equal(row, expected.photometric())
    assert len({tuple(p.tolist()) for p in params}) == 20
    reference = moco_transform(CONFIG, seed=5)
    assert torch.equal(reference(image, key="s3", epoch=4), reference(image, key="s3", epoch=4))
    assert not torch.equal(reference(image, key="s3", epoch=4), reference(image, key="s3", epoch=5))


def test_photometric_row_layout():
    params = draw_params(CONFIG, 64, 64, sample_rng(0, 0, "x"))
    row = params.photometric()
    assert row[PARAM_INDEX["sigma"]].item() == pytest.approx(params.sigma)
    assert row[5:9].tolist() == list(params.order)
    assert row[PARAM_INDEX["flip"]].item() == float(params.flip)
