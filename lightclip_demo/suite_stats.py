"""Statistics of the ablation suite: paired differences with t intervals, metrics at a compute
budget. Pure functions of :class:`~lightclip_demo.ablation_report.RunResult` lists."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from scipy import stats

from lightclip_demo.ablation_report import RunResult

ZERO_SHOT = "zero-shot top-1"
MEAN_R1 = "mean R@1"
METRICS = (ZERO_SHOT, "I->T R@1", "T->I R@1", MEAN_R1)
Metric = Callable[[RunResult], float | None]


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with the half width of its two-sided 95% t interval (nan for n < 2)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def text(self) -> str:
        if self.n == 0:
            return "-"
        if math.isnan(self.half_width):
            return f"{self.mean:+.1f}"
        return f"{self.mean:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"


def t_interval(values: list[float], confidence: float = 0.95) -> Interval:
    """Mean and the t interval's half width ``t(1-(1-c)/2, n-1) * s / sqrt(n)``."""
    n = len(values)
    if n == 0:
        return Interval(float("nan"), float("nan"), 0)
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, float("nan"), n)
    quantile = stats.t.ppf(1 - (1 - confidence) / 2, n - 1)
    return Interval(mean, quantile * statistics.stdev(values) / math.sqrt(n), n)


def paired_deltas(runs: list[RunResult], baseline: list[RunResult], metric: Metric) -> dict[int, float]:
    """Per seed: ``metric(run) - metric(baseline run of the same seed)``, seeds both have."""
    base = {r.seed: metric(r) for r in baseline}
    deltas = {}
    for run in runs:
        value, reference = metric(run), base.get(run.seed)
        if value is not None and reference is not None:
            deltas[run.seed] = value - reference
    return deltas


def cpu_per_step(run: RunResult) -> float:
    """CPU seconds per training step (the whole training process, loader workers included);
    falls back on wall seconds for results recorded without CPU time."""
    return (run.cpu_seconds or run.train_seconds) / max(run.steps, 1)


def value_at_step(run: RunResult, key: str, step: float) -> float | None:
    """``key`` of the evaluation curve, linearly interpolated at ``step`` (clamped to the curve's
    ends: past the last evaluation it is the final value)."""
    points = sorted((s, m[key]) for s, _, m in run.curve if key in m)
    if not points:
        return None
    if step <= points[0][0]:
        return points[0][1]
    for (s0, v0), (s1, v1) in zip(points, points[1:]):
        if step <= s1:
            return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    return points[-1][1]


def at_budget(run: RunResult, key: str, budget_cpu_seconds: float) -> float | None:
    """``key`` when ``run`` has spent ``budget_cpu_seconds`` of training CPU time."""
    return value_at_step(run, key, budget_cpu_seconds / cpu_per_step(run))


def metric_keys(classification: str, retrieval: str | None) -> dict[str, list[str]]:
    """Each reported metric -> the metric keys it averages (fractions in the results)."""
    keys = {ZERO_SHOT: [f"{classification}/acc1"]}
    if retrieval:
        i2t, t2i = f"{retrieval}/text_retrieval_recall@1", f"{retrieval}/image_retrieval_recall@1"
        keys |= {"I->T R@1": [i2t], "T->I R@1": [t2i], MEAN_R1: [i2t, t2i]}
    return keys


def final_value(run: RunResult, keys: list[str]) -> float | None:
    """Mean of the final metrics named ``dataset/metric`` in ``keys``, in percent."""
    values = []
    for key in keys:
        dataset, _, metric = key.rpartition("/")
        value = run.metrics.get(dataset, {}).get(metric)
        if value is None:
            return None
        values.append(100 * value)
    return statistics.fmean(values)


def budget_value(run: RunResult, keys: list[str], budget: float) -> float | None:
    """Mean of ``keys`` (percent) at ``budget`` CPU seconds of ``run``'s evaluation curve."""
    values = [at_budget(run, key, budget) for key in keys]
    return None if any(v is None for v in values) else 100 * statistics.fmean(values)  # type: ignore[arg-type]


def equal_time_deltas(runs: list[RunResult], baseline: list[RunResult], keys: list[str]) -> dict[int, float]:
    """Per seed: the run's value at the baseline run's CPU time minus the baseline's final value."""
    deltas = {}
    for base in baseline:
        run = next((r for r in runs if r.seed == base.seed), None)
        if run is None:
            continue
        value, reference = budget_value(run, keys, cpu_per_step(base) * base.steps), final_value(base, keys)
        if value is not None and reference is not None:
            deltas[base.seed] = value - reference
    return deltas


def cost_ratio(runs: list[RunResult], baseline: list[RunResult]) -> float:
    """Median over paired seeds of CPU seconds per step against the baseline's."""
    base = {r.seed: cpu_per_step(r) for r in baseline}
    ratios = [cpu_per_step(r) / base[r.seed] for r in runs if r.seed in base and base[r.seed] > 0]
    return statistics.median(ratios) if ratios else float("nan")
