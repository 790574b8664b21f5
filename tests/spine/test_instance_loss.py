"""Instance-level loss against independent reference formulas on small tensors."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightclip.losses import instance_loss, label_mode_at, soft_cross_entropy, soft_targets


def _embeddings(n: int, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1),
        F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1),
    )


def test_one_hot_equals_clip_loss():
    image, text = _embeddings(6)
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    logits = scale * image @ text.T
    labels = torch.arange(6)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    got = instance_loss(image, text, scale, mode="one_hot")
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_smoothed_labels_rows_and_values():
    logits = torch.randn(5, 5, dtype=torch.float64)
    targets = soft_targets(logits, torch.arange(5), "smooth", alpha=0.2)
    assert torch.allclose(targets.sum(dim=1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(targets.diagonal(), torch.full((5,), 0.8, dtype=torch.float64))
    off = targets[~torch.eye(5, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, 0.2 / 4))


def test_importance_weights_match_softmax_over_negatives():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 4)) * 3
    targets = soft_targets(torch.tensor(z), torch.arange(4), "importance", alpha=0.2).numpy()
    for i in range(4):
        negatives = [k for k in range(4) if k != i]
        denominator = sum(math.exp(z[i, k]) for k in negatives)
        for j in negatives:
            assert targets[i, j] == pytest.approx(0.2 * math.exp(z[i, j]) / denominator, rel=1e-10)
        assert targets[i, i] == pytest.approx(0.8)
        assert targets[i].sum() == pytest.approx(1.0)


def test_text_to_image_direction_uses_columns():
    image, text = _embeddings(5, seed=3)
    scale = torch.tensor(10.0, dtype=torch.float64)
    z = (scale * image @ text.T).numpy()
    alpha = 0.3

    def direction(rows: np.ndarray) -> float:
        total = 0.0
        for i in range(rows.shape[0]):
            neg = [k for k in range(rows.shape[1]) if k != i]
            w = np.exp(rows[i, neg]) / np.exp(rows[i, neg]).sum()
            y = np.zeros(rows.shape[1])
            y[i] = 1 - alpha
            y[neg] = alpha * w
            logp = rows[i] - np.log(np.exp(rows[i]).sum())
            total += -(y * logp).sum()
        return total / rows.shape[0]

    expected = (direction(z) + direction(z.T)) / 2
    got = instance_loss(image, text, scale, mode="importance", alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("mode", ["one_hot", "smooth", "importance"])
def test_gradient_is_softmax_minus_target(mode):
    logits = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    targets = soft_targets(logits, torch.arange(4), mode, alpha=0.2)
    assert not targets.requires_grad
    soft_cross_entropy(logits, targets).backward()
    expected = (logits.detach().softmax(dim=1) - targets) / 4
    assert torch.allclose(logits.grad, expected, atol=1e-12)


def test_schedule_switches_exactly_at_r1_r2():
    assert label_mode_at(0.0) == "one_hot"
    assert label_mode_at(np.nextafter(0.33, 0)) == "one_hot"
    assert label_mode_at(0.33) == "smooth"
    assert label_mode_at(np.nextafter(0.66, 0)) == "smooth"
    assert label_mode_at(0.66) == "importance"
    assert label_mode_at(1.0) == "importance"
    assert label_mode_at(0.5, r1=0.5, r2=0.9) == "smooth"


def test_unknown_label_mode_lists_valid_modes():
    with pytest.raises(ValueError, match="one_hot"):
        soft_targets(torch.zeros(2, 2), torch.arange(2), "hard", alpha=0.1)


@pytest.mark.parametrize("mode", ["one_hot", "smooth", "importance"])
def test_sharded_local_losses_average_to_the_global_loss(mode):
    image, text = _embeddings(8, seed=5)
    scale = torch.tensor(5.0, dtype=torch.float64)
    whole = instance_loss(image, text, scale, mode=mode)
    shards = [
        instance_loss(
            image[r * 4 : (r + 1) * 4],
            text[r * 4 : (r + 1) * 4],
            scale,
            mode=mode,
            all_image_embeds=image,
            all_text_embeds=text,
            rank=r,
        )
        for r in range(2)
    ]
    assert (sum(shards) / 2).item() == pytest.approx(whole.item(), rel=1e-12)
