"""The batched solver on hard inputs (ties, duplicate words) and off the critical path."""

import threading

import numpy as np
import pytest
import torch

from lightclip.losses.matching import (
    PendingMatching,
    batched_matching,
    reference_matching,
    start_matching,
)


def _totals(cost: np.ndarray, matched: np.ndarray) -> np.ndarray:
    return (cost.astype(np.float64) * matched).sum(axis=(1, 2))


def _assert_optimal(cost: np.ndarray, valid: np.ndarray, matched: np.ndarray) -> None:
    reference = reference_matching(cost.astype(np.float64), valid)
    assert np.allclose(_totals(cost, matched), _totals(cost, reference), rtol=0, atol=1e-9)
    assert (matched.sum(axis=(1, 2)) == reference.sum(axis=(1, 2))).all()
    assert matched.sum(axis=1).max() <= 1 and matched.sum(axis=2).max() <= 1
    assert not (matched & ~valid[:, None, :]).any()


@pytest.mark.parametrize("shape", [(49, 32), (7, 7), (3, 9), (9, 3)])
def test_ties_and_duplicate_words_stay_optimal(shape):
    """Integer costs tie everywhere and repeated words give identical columns: the greedy
    start and the vectorised scan must still reach scipy's minimum total."""
    rng = np.random.default_rng(3)
    p, q = shape
    cost = rng.integers(0, 4, size=(300, p, q)).astype(np.float32)
    cost[:, :, q // 2] = cost[:, :, 0]  # the same word twice in a caption
    valid = rng.random((300, q)) > 0.3
    _assert_optimal(cost, valid, batched_matching(cost, valid))


def test_greedy_start_conflicts_are_resolved():
    """Every row prefers column 0: only one keeps it, the others are re-routed optimally."""
    cost = np.ones((1, 4, 6))
    cost[0, :, 0] = 0.0
    cost[0, np.arange(4), np.arange(1, 5)] = [0.1, 0.9, 0.2, 0.3]
    matched = batched_matching(cost, np.ones((1, 6), bool))
    _assert_optimal(cost, np.ones((1, 6), bool), matched)
    assert _totals(cost, matched)[0] == pytest.approx(0.0 + 0.1 + 0.2 + 0.3)


def test_non_finite_padding_is_ignored_but_valid_costs_are_checked():
    cost = np.random.default_rng(0).uniform(0, 2, size=(2, 3, 4))
    valid = np.array([[True, True, False, False], [True, True, True, True]])
    cost[0, :, 3] = np.inf  # padding column: never read
    assert batched_matching(cost, valid)[0].sum() == 2
    cost[1, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        batched_matching(cost, valid)


def _problem(seed: int, b: int = 64, p: int = 49, q: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(b, p, q, generator=g) * 2
    valid = torch.rand(b, q, generator=g) > 0.25
    return cost, valid


def test_start_matching_equals_batched_matching_on_cpu():
    cost, valid = _problem(0)
    pending = start_matching(cost.requires_grad_(), valid)
    assert isinstance(pending, PendingMatching)
    matched = pending.result()
    assert matched.dtype == torch.bool and matched.device == cost.device and matched.shape == cost.shape
    expected = batched_matching(cost.detach().numpy(), valid.numpy())
    assert np.array_equal(matched.numpy(), expected)
    assert pending.result() is matched  # collected once
    assert pending.wait_s >= 0 and pending.solve_s > 0


def test_start_matching_copies_the_cost_and_casts_bf16_to_float32():
    cost, valid = _problem(1, b=8)
    half = cost.to(torch.bfloat16)
    pending = start_matching(half, valid)
    half.fill_(0.0)  # the caller may reuse its buffer at once
    expected = batched_matching(cost.to(torch.bfloat16).float().numpy(), valid.numpy())
    assert np.array_equal(pending.result().numpy(), expected)


def test_many_threads_start_matchings_at_once():
    problems = [_problem(seed, b=32) for seed in range(6)]
    results: dict[int, np.ndarray] = {}

    def run(seed: int) -> None:
        pendings = [start_matching(*problems[seed]) for _ in range(2)]
        results[seed] = np.stack([p.result().numpy() for p in pendings])

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed, (cost, valid) in enumerate(problems):
        expected = batched_matching(cost.numpy(), valid.numpy())
        assert np.array_equal(results[seed][0], expected) and np.array_equal(results[seed][1], expected)


def test_solver_errors_reach_result():
    cost, valid = _problem(2, b=4)
    cost[1, 0, valid[1].nonzero()[0, 0]] = float("nan")
    pending = start_matching(cost, valid)
    with pytest.raises(ValueError, match="NaN or infinite"):
        pending.result()


def test_shape_mismatch_is_refused_at_once():
    with pytest.raises(ValueError, match="do not fit"):
        start_matching(torch.zeros(2, 3, 4), torch.ones(2, 5, dtype=torch.bool))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_start_matching_from_cuda_returns_on_the_device():
    cost, valid = _problem(3)
    pending = start_matching(cost.cuda(), valid.cuda())
    matched = pending.result()
    assert matched.is_cuda
    assert np.array_equal(matched.cpu().numpy(), batched_matching(cost.numpy(), valid.numpy()))
