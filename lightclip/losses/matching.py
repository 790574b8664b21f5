"""Minimum-cost one-to-one matching of patches and words, solved for a whole batch at once.

The solver is the shortest-augmenting-path (Jonker-Volgenant) algorithm that
``scipy.optimize.linear_sum_assignment`` uses, compiled with numba and run in parallel over the
pairs of a batch, so that 4096 small problems cost one call instead of 4096 Python round trips.
Rectangular problems match ``min(P, Q)`` pairs; surplus tokens stay unmatched.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.optimize import linear_sum_assignment


@numba.njit(cache=True, nogil=True)
def _solve_rows_le_cols(cost: np.ndarray) -> np.ndarray:
    """Column of each row for an (n, m) cost with n <= m; minimum total cost."""
    n, m = cost.shape
    u = np.zeros(n)
    v = np.zeros(m)
    shortest = np.empty(m)
    path = np.full(m, -1, np.int64)
    col4row = np.full(n, -1, np.int64)
    row4col = np.full(m, -1, np.int64)
    remaining = np.empty(m, np.int64)
    seen_row = np.zeros(n, np.bool_)
    seen_col = np.zeros(m, np.bool_)
    for cur in range(n):
        for it in range(m):
            remaining[it] = m - 1 - it
        shortest[:] = np.inf
        seen_row[:] = False
        seen_col[:] = False
        min_val = 0.0
        i = cur
        sink = -1
        left = m
        while sink == -1:
            seen_row[i] = True
            index = -1
            lowest = np.inf
            for it in range(left):
                j = remaining[it]
                r = min_val + cost[i, j] - u[i] - v[j]
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                    lowest = shortest[j]
                    index = it
            min_val = lowest
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            seen_col[j] = True
            left -= 1
            remaining[index] = remaining[left]
        u[cur] += min_val
        for r_ in range(n):
            if seen_row[r_] and r_ != cur:
                u[r_] += min_val - shortest[col4row[r_]]
        for c in range(m):
            if seen_col[c]:
                v[c] -= min_val - shortest[c]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            nxt = col4row[i]
            col4row[i] = j
            j = nxt
            if i == cur:
                break
    return col4row


@numba.njit(cache=True, parallel=True)
def _batched_matching(cost: np.ndarray, valid_cols: np.ndarray) -> np.ndarray:
    """cost (B, P, Q), valid_cols (B, Q) -> matched (B, P, Q) bool over valid columns only."""
    b, p, q = cost.shape
    matched = np.zeros((b, p, q), np.bool_)
    for k in numba.prange(b):
        cols = np.nonzero(valid_cols[k])[0]
        m = cols.shape[0]
        if m == 0 or p == 0:
            continue
        if m >= p:  # rows = patches
            sub = np.empty((p, m))
            for r in range(p):
                for c in range(m):
                    sub[r, c] = cost[k, r, cols[c]]
            assign = _solve_rows_le_cols(sub)
            for r in range(p):
                matched[k, r, cols[assign[r]]] = True
        else:  # rows = words
            sub = np.empty((m, p))
            for c in range(m):
                for r in range(p):
                    sub[c, r] = cost[k, r, cols[c]]
            assign = _solve_rows_le_cols(sub)
            for c in range(m):
                matched[k, assign[c], cols[c]] = True
    return matched


def batched_matching(cost: np.ndarray, valid_cols: np.ndarray) -> np.ndarray:
    """Minimum-cost one-to-one matching of each pair's patches (rows) and valid words (columns).

    ``cost``: (B, P, Q) float32/float64; ``valid_cols``: (B, Q) bool (False for padding and excluded
    tokens, which are never matched). Returns a (B, P, Q) bool mask of matched (patch, word).
    """
    if cost.dtype not in (np.float32, np.float64):
        cost = cost.astype(np.float64)
    cost = np.ascontiguousarray(cost)  # float32 or float64: each pair is solved in float64
    valid_cols = np.ascontiguousarray(valid_cols, dtype=np.bool_)
    if cost.ndim != 3 or valid_cols.shape != (cost.shape[0], cost.shape[2]):
        raise ValueError(f"cost {cost.shape} and valid_cols {valid_cols.shape} do not fit (B,P,Q)/(B,Q)")
    if not np.isfinite(cost).all():
        raise ValueError("matching cost holds NaN or infinite values")
    return _batched_matching(cost, valid_cols)


def reference_matching(cost: np.ndarray, valid_cols: np.ndarray) -> np.ndarray:
    """The same result, one pair at a time through scipy (the reference implementation)."""
    matched = np.zeros(cost.shape, dtype=bool)
    for k in range(cost.shape[0]):
        cols = np.flatnonzero(valid_cols[k])
        if cols.size == 0:
            continue
        rows, picked = linear_sum_assignment(cost[k][:, cols])
        matched[k, rows, cols[picked]] = True
    return matched
