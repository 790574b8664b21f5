"""Minimum-cost one-to-one matching of patches and words, solved for a whole batch at once.

The solver is the shortest-augmenting-path (Jonker-Volgenant) algorithm that
``scipy.optimize.linear_sum_assignment`` uses, compiled with numba and run in parallel over the
pairs of a batch, so that 4096 small problems cost one call instead of 4096 Python round trips.
Each pair starts from a greedy assignment on row-reduced costs (every row takes its cheapest
column when that column is free; the duals stay feasible, so the result is still exact) and
scans its columns branch-free, which lets the compiler vectorise the inner loop. Rectangular
problems match ``min(P, Q)`` pairs; surplus tokens stay unmatched.

:func:`start_matching` takes the solve off a training step's critical path: it copies the
detached cost to host memory asynchronously and solves it on a background thread while the
device carries on (e.g. with the MLM passes); :meth:`PendingMatching.result` collects it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numba
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

# Bit flags for the compiler: costs are checked finite first; no reassociation (exact sums).
_FAST = {"nnan", "nsz"}


@numba.njit(cache=True, nogil=True)
def _greedy_start(best, v, col4row, row4col) -> None:
    """Each row on its cheapest column ``best`` when that column is still free (v = 0)."""
    v[:] = 0.0
    row4col[:] = -1
    for i in range(best.shape[0]):
        col4row[i] = -1
        if row4col[best[i]] == -1:
            row4col[best[i]] = i
            col4row[i] = best[i]


@numba.njit(cache=True, nogil=True)
def _closest_column(dist, lowest, row4col) -> int:
    """First column at distance ``lowest``, a free one preferred (it ends the search)."""
    found = -1
    for j in range(dist.shape[0]):
        if dist[j] == lowest:
            if row4col[j] == -1:
                return j
            if found == -1:
                found = j
    return found


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _shortest_path(cost, cur, u, v, work, path, row4col, seen_row) -> int:
    """Dijkstra on reduced costs from free row ``cur`` to the nearest free column (the sink).

    ``work`` rows: 0 tentative distances, 1 final distances, 2 barrier (inf once scanned).
    Returns the sink; ``work[3, 0]`` holds the path length."""
    n, m = cost.shape
    dist, final, barrier = work[0, :m], work[1, :m], work[2, :m]
    dist[:] = np.inf
    barrier[:] = 0.0
    seen_row[:n] = False
    min_val = 0.0
    i = cur
    while True:
        seen_row[i] = True
        base = min_val - u[i]
        lowest = np.inf
        for j in range(m):  # branch-free: scanned columns add +inf and never improve
            r = base + cost[i, j] - v[j] + barrier[j]
            better = r < dist[j]
            dist[j] = r if better else dist[j]
            path[j] = i if better else path[j]
            lowest = min(lowest, dist[j])
        min_val = lowest
        j = _closest_column(dist, lowest, row4col)
        final[j], barrier[j], dist[j] = lowest, np.inf, np.inf
        if row4col[j] == -1:
            work[3, 0] = min_val
            return j
        i = row4col[j]


@numba.njit(cache=True, nogil=True)
def _augment(cost, cur, u, v, work, path, col4row, row4col, seen_row) -> None:
    """Assign free row ``cur`` along its shortest augmenting path and update the duals."""
    n, m = cost.shape
    sink = _shortest_path(cost, cur, u, v, work, path, row4col, seen_row)
    min_val, final, barrier = work[3, 0], work[1, :m], work[2, :m]
    u[cur] += min_val
    for r in range(n):
        if seen_row[r] and r != cur:
            u[r] += min_val - final[col4row[r]]
    for c in range(m):
        if barrier[c] == np.inf:
            v[c] -= min_val - final[c]
    j = sink
    while True:
        i = path[j]
        row4col[j] = i
        nxt = col4row[i]
        col4row[i] = j
        j = nxt
        if i == cur:
            break


@numba.njit(cache=True, nogil=True)
def _load_pair(cost, cols, m, words_are_rows, sub, u, best) -> bool:
    """Copy the valid columns of one (P, Q) cost into ``sub`` (rows = the smaller side) as
    float64, with each row's minimum ``u`` (the row-reduced duals) and its column ``best``.
    Returns False when a cost is not finite."""
    p = cost.shape[0]
    rows = m if words_are_rows else p
    u[:rows] = np.inf
    finite = 0.0
    for r in range(p):
        for c in range(m):
            x = np.float64(cost[r, cols[c]])
            finite += x * 0.0  # NaN once any cost is NaN or infinite
            row, col = (c, r) if words_are_rows else (r, c)
            sub[row, col] = x
            if x < u[row]:
                u[row] = x
                best[row] = col
    return finite == 0.0


@numba.njit(cache=True, nogil=True)
def _solve_pair(cost, valid, out, sub, col4row, work, iwork, seen_row) -> bool:
    """Match one pair's (P, Q) cost over its valid columns into ``out``; False if not finite."""
    p, q = cost.shape
    cols, best = iwork[2], iwork[3]
    m = 0
    for c in range(q):
        if valid[c]:
            cols[m] = c
            m += 1
    if m == 0 or p == 0:
        return True
    words_are_rows = m < p  # the smaller side are the rows (n <= m for the solver)
    n, width = (m, p) if words_are_rows else (p, m)
    u, v, path, row4col = work[4, :n], work[5, :width], iwork[0, :width], iwork[1, :width]
    if not _load_pair(cost, cols, m, words_are_rows, sub, u, best):
        return False
    s, assign = sub[:n, :width], col4row[:n]
    _greedy_start(best[:n], v, assign, row4col)
    for cur in range(n):
        if assign[cur] == -1:
            _augment(s, cur, u, v, work, path, assign, row4col, seen_row)
    for r in range(n):
        if words_are_rows:
            out[assign[r], cols[r]] = True
        else:
            out[r, cols[assign[r]]] = True
    return True


@numba.njit(cache=True, nogil=True, parallel=True)
def _batched_matching(cost, valid_cols, chunk):
    """cost (B, P, Q), valid_cols (B, Q) -> (matched (B, P, Q) bool, finite (B,) bool)."""
    b, p, q = cost.shape
    matched = np.zeros((b, p, q), np.bool_)
    finite = np.ones(b, np.bool_)
    side = max(p, q, 1)
    for block in numba.prange((b + chunk - 1) // chunk):  # work buffers once per block
        sub = np.empty((side, side))
        col4row = np.empty(side, np.int64)
        work = np.empty((6, side))
        iwork = np.empty((4, side), np.int64)
        seen_row = np.empty(side, np.bool_)
        for k in range(block * chunk, min(b, (block + 1) * chunk)):
            finite[k] = _solve_pair(cost[k], valid_cols[k], matched[k], sub, col4row, work, iwork, seen_row)
    return matched, finite


_CHUNK = 32
_KERNEL_LOCK = threading.Lock()  # numba's workqueue threading layer is not re-entrant


def batched_matching(cost: np.ndarray, valid_cols: np.ndarray) -> np.ndarray:
    """Minimum-cost one-to-one matching of each pair's patches (rows) and valid words (columns).

    ``cost``: (B, P, Q) float32/float64; ``valid_cols``: (B, Q) bool (False for padding and excluded
    tokens, which are never matched). Returns a (B, P, Q) bool mask of matched (patch, word).
    Safe to call from several threads at once (calls are serialised).
    """
    if cost.dtype not in (np.float32, np.float64):
        cost = cost.astype(np.float64)
    cost = np.ascontiguousarray(cost)  # float32 or float64: each pair is solved in float64
    valid_cols = np.ascontiguousarray(valid_cols, dtype=np.bool_)
    if cost.ndim != 3 or valid_cols.shape != (cost.shape[0], cost.shape[2]):
        raise ValueError(f"cost {cost.shape} and valid_cols {valid_cols.shape} do not fit (B,P,Q)/(B,Q)")
    with _KERNEL_LOCK:
        matched, finite = _batched_matching(cost, valid_cols, _CHUNK)
    if not finite.all():
        raise ValueError("matching cost holds NaN or infinite values")
    return matched


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


# --- off the critical path --------------------------------------------------------------------

_SOLVER: ThreadPoolExecutor | None = None
_SOLVER_LOCK = threading.Lock()


def _solver() -> ThreadPoolExecutor:
    """The background solver thread (one: the kernel is parallel already), made on first use."""
    global _SOLVER
    with _SOLVER_LOCK:
        if _SOLVER is None:
            _SOLVER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lightclip-matching")
        return _SOLVER


def _to_host(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A detached host copy of ``tensor``: pinned and asynchronous from a CUDA device."""
    source = tensor.detach()
    pinned = source.device.type == "cuda"
    host = torch.empty(source.shape, dtype=dtype, pin_memory=pinned)
    host.copy_(source, non_blocking=pinned)
    return host


class PendingMatching:
    """A matching being solved on the background thread; :meth:`result` waits for it.

    ``wait_s``: how long :meth:`result` blocked (0 until called); ``solve_s``: the solve's own
    time on the background thread, copy wait included (the time a synchronous call would cost).
    """

    def __init__(self, future: Future, device: torch.device):
        self._future = future
        self._device = device
        self._matched: torch.Tensor | None = None
        self.wait_s = 0.0
        self.solve_s = 0.0

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> torch.Tensor:
        """The (B, P, Q) bool assignment on the cost's device; re-raises a solver error."""
        if self._matched is None:
            start = time.perf_counter()
            matched, self.solve_s = self._future.result()
            self.wait_s = time.perf_counter() - start
            self._matched = torch.from_numpy(matched).to(self._device)
        return self._matched


def _solve_when_copied(cost: torch.Tensor, valid: torch.Tensor, copied) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    if copied is not None:
        copied.synchronize()
    matched = batched_matching(cost.numpy(), valid.numpy())
    return matched, time.perf_counter() - start


def start_matching(cost: torch.Tensor, valid_cols: torch.Tensor) -> PendingMatching:
    """Start solving :func:`batched_matching` of ``cost`` (B, P, Q) over ``valid_cols`` (B, Q).

    The detached cost (as float32) and the mask are copied to host memory (pinned, without
    blocking, from a CUDA device) and solved on a background CPU thread, so the device keeps
    working meanwhile; call :meth:`PendingMatching.result` when the assignment is needed.
    """
    if cost.ndim != 3 or tuple(valid_cols.shape) != (cost.shape[0], cost.shape[2]):
        raise ValueError(f"cost {tuple(cost.shape)} and valid_cols {tuple(valid_cols.shape)} do not fit (B,P,Q)/(B,Q)")
    host_cost = _to_host(cost, torch.float32)
    host_valid = _to_host(valid_cols, torch.bool)
    copied = None
    if cost.device.type == "cuda":
        copied = torch.cuda.Event()
        copied.record(torch.cuda.current_stream(cost.device))
    future = _solver().submit(_solve_when_copied, host_cost, host_valid, copied)
    return PendingMatching(future, cost.device)
