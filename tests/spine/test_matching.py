"""Hungarian matching against brute force and scipy; the token loss built on it."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from lightclip.losses import batched_matching, reference_matching, token_cost, token_loss
from lightclip.losses.token import TokenLossConfig

COST_FORM = TokenLossConfig(form="cost")


def brute_force_min(cost: np.ndarray) -> float:
    p, q = cost.shape
    if p <= q:
        return min(sum(cost[r, c] for r, c in zip(range(p), cols)) for cols in itertools.permutations(range(q), p))
    return min(sum(cost[r, c] for r, c in zip(rows, range(q))) for rows in itertools.permutations(range(p), q))


@pytest.mark.parametrize("seed", range(40))
def test_matching_total_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.integers(1, 7, size=2)
    cost = rng.uniform(0, 2, size=(1, p, q))
    matched = batched_matching(cost, np.ones((1, q), bool))[0]
    assert matched.sum() == min(p, q)
    assert matched.sum(axis=0).max() <= 1 and matched.sum(axis=1).max() <= 1
    assert cost[0][matched].sum() == pytest.approx(brute_force_min(cost[0]), abs=1e-9)


def test_invalid_columns_are_never_matched():
    rng = np.random.default_rng(7)
    cost = rng.uniform(0, 2, size=(64, 5, 9))
    valid = rng.random((64, 9)) > 0.5
    valid[0] = False  # a caption with nothing to match
    cost[~valid[:, None, :].repeat(5, axis=1)] = -10.0  # tempting, but padding
    matched = batched_matching(cost, valid)
    assert not (matched & ~valid[:, None, :]).any()
    assert (matched.sum(axis=(1, 2)) == np.minimum(5, valid.sum(axis=1))).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(49, 32), (49, 60), (4, 3)])
def test_batched_solver_agrees_with_reference(shape, dtype):
    rng = np.random.default_rng(11)
    p, q = shape
    cost = rng.uniform(0, 2, size=(50, p, q)).astype(dtype)
    valid = rng.random((50, q)) > 0.2
    batched = batched_matching(cost, valid)
    reference = reference_matching(cost.astype(np.float64), valid)
    cost = cost.astype(np.float64)
    assert np.allclose((cost * batched).sum(axis=(1, 2)), (cost * reference).sum(axis=(1, 2)), atol=1e-9)
    assert (batched.sum(axis=(1, 2)) == reference.sum(axis=(1, 2))).all()


def test_non_finite_cost_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        batched_matching(np.full((1, 2, 2), np.nan), np.ones((1, 2), bool))


def test_token_loss_is_mean_of_matched_costs():
    g = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(3, 6, 8, generator=g, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(3, 5, 8, generator=g, dtype=torch.float64), dim=-1)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 1, 0]], dtype=torch.bool)
    expected = []
    for b in range(3):
        cols = np.flatnonzero(mask[b].numpy())
        cost = 1 - image[b].numpy() @ text[b].numpy().T
        rows, picked = linear_sum_assignment(cost[:, cols])
        expected.append(cost[rows, cols[picked]].mean())
    got = token_loss(image, text, mask, COST_FORM)
    assert got.item() == pytest.approx(float(np.mean(expected)), rel=1e-10)
    assert token_cost(image, text).min() >= 0 and token_cost(image, text).max() <= 2


def test_token_loss_skips_pairs_without_tokens_and_gradient_flows_through_cost():
    image = F.normalize(torch.randn(2, 4, 8, dtype=torch.float64), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(2, 3, 8, dtype=torch.float64), dim=-1).requires_grad_()
    mask = torch.tensor([[True, True, False], [False, False, False]])
    loss = token_loss(image, text, mask, COST_FORM)
    loss.backward()
    assert image.grad[1].abs().sum() == 0 and text.grad[1].abs().sum() == 0
    assert image.grad[0].abs().sum() > 0 and text.grad[0, :2].abs().sum() > 0
    assert text.grad[0, 2].abs().sum() == 0
