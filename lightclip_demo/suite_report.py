"""The ablation suite's Markdown: per world and over the worlds, paired Δ with 95% intervals at
equal steps and at equal CPU time, and the checks a default recipe must pass."""

from __future__ import annotations

import statistics

from lightclip_demo.ablation_report import RunResult, markdown_head
from lightclip_demo.suite_stats import (
    MEAN_R1,
    ZERO_SHOT,
    Interval,
    cost_ratio,
    equal_time_deltas,
    final_value,
    metric_keys,
    paired_deltas,
    t_interval,
)

Groups = dict[str, list[RunResult]]  # variant -> runs (one per seed)
HEADLINE = (ZERO_SHOT, MEAN_R1)


def equal_step_deltas(groups: Groups, variant: str, baseline: str, keys: list[str]) -> dict[int, float]:
    return paired_deltas(groups[variant], groups[baseline], lambda run: final_value(run, keys))


def _mean(values: list[float | None]) -> str:
    kept = [v for v in values if v is not None]
    return f"{statistics.fmean(kept):.1f}" if kept else "-"


def world_rows(groups: Groups, keys: dict[str, list[str]], baseline: str) -> list[str]:
    """One row per variant: means, Δ at equal steps, Δ at equal CPU time, cost."""
    rows = []
    for name, runs in groups.items():
        cells = [str(len(runs))]
        for metric in metric_keys_present(keys):
            cells.append(_mean([final_value(r, keys[metric]) for r in runs]))
            same = name == baseline
            cells.append(
                "-"
                if same
                else t_interval(list(equal_step_deltas(groups, name, baseline, keys[metric]).values())).text()
            )
        for metric in metric_keys_present(keys):
            deltas = equal_time_deltas(runs, groups[baseline], keys[metric])
            cells.append("-" if name == baseline else t_interval(list(deltas.values())).text())
        cells.append(f"{cost_ratio(runs, groups[baseline]):.2f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def metric_keys_present(keys: dict[str, list[str]]) -> list[str]:
    return [metric for metric in HEADLINE if metric in keys]


def world_table(name: str, groups: Groups, keys: dict[str, list[str]], baseline: str, budget: str) -> list[str]:
    metrics = metric_keys_present(keys)
    head = ["variant", "seeds"]
    for metric in metrics:
        head += [metric, f"Δ {metric} (steps)"]
    head += [f"Δ {metric} (CPU time)" for metric in metrics] + ["CPU s/step ×"]
    return [
        f"### {name}",
        "",
        *([budget, ""] if budget else []),
        *markdown_head(head),
        *world_rows(groups, keys, baseline),
        "",
    ]


def mean_over_worlds(
    worlds: dict[str, Groups],
    keys: dict[str, dict[str, list[str]]],
    variant: str,
    baseline: str,
    metric: str,
    equal_time: bool,
) -> Interval:
    """Δ averaged over the worlds per seed (seeds every world has), then its t interval."""
    per_world = []
    for name, groups in worlds.items():
        if variant not in groups or metric not in keys[name]:
            return Interval(float("nan"), float("nan"), 0)
        if equal_time:
            per_world.append(equal_time_deltas(groups[variant], groups[baseline], keys[name][metric]))
        else:
            per_world.append(equal_step_deltas(groups, variant, baseline, keys[name][metric]))
    seeds = set.intersection(*(set(d) for d in per_world))
    return t_interval([statistics.fmean(d[s] for d in per_world) for s in sorted(seeds)])


def world_intervals(
    worlds: dict[str, Groups], keys: dict[str, dict[str, list[str]]], variant: str, baseline: str, metric: str
) -> list[Interval]:
    return [
        t_interval(list(equal_step_deltas(groups, variant, baseline, keys[name][metric]).values()))
        for name, groups in worlds.items()
        if metric in keys[name]
    ]


def verdict(worlds: dict[str, Groups], keys: dict[str, dict[str, list[str]]], variant: str, baseline: str) -> str:
    """The checks of a default: never below -1 point (lower 95% bound, zero-shot and mean R@1)
    on any world at equal steps; a win (lower bound > 0, either metric) on every world; the mean
    over worlds at least +2 on one metric; at equal CPU time not behind on the mean."""
    never_loses = all(i.low > -1 for m in HEADLINE for i in world_intervals(worlds, keys, variant, baseline, m))
    wins = all(
        any(
            t_interval(list(equal_step_deltas(groups, variant, baseline, keys[name][m]).values())).low > 0
            for m in HEADLINE
            if m in keys[name]
        )
        for name, groups in worlds.items()
    )
    means = [mean_over_worlds(worlds, keys, variant, baseline, m, False).mean for m in HEADLINE]
    timed = [mean_over_worlds(worlds, keys, variant, baseline, m, True).mean for m in HEADLINE]
    marks = {
        "never below -1": never_loses,
        "wins on every world": wins,
        "mean >= +2": any(m >= 2 for m in means),
        "not behind at equal CPU time": all(t >= 0 for t in timed),
    }
    return ", ".join(f"{label}: {'yes' if ok else 'no'}" for label, ok in marks.items())


def on_every_world(worlds: dict[str, Groups], baseline: str) -> tuple[list[str], list[str]]:
    """(variants every world ran, the others), the baseline left out, in first-seen order."""
    seen = list(dict.fromkeys(v for groups in worlds.values() for v in groups if v != baseline))
    every = [v for v in seen if all(v in groups for groups in worlds.values())]
    return every, [v for v in seen if v not in every]


def overall_rows(worlds: dict[str, Groups], keys: dict[str, dict[str, list[str]]], baseline: str) -> list[str]:
    variants = on_every_world(worlds, baseline)[0]
    rows = []
    for variant in variants:
        cells = [
            mean_over_worlds(worlds, keys, variant, baseline, m, t).text() for t in (False, True) for m in HEADLINE
        ]
        rows.append(f"| {variant} | " + " | ".join(cells) + f" | {verdict(worlds, keys, variant, baseline)} |")
    return rows


def suite_markdown(
    worlds: dict[str, Groups],
    sets: dict[str, tuple[str, str | None]],
    baseline: str,
    budgets: dict[str, str],
    machine: str,
) -> str:
    """The whole report: per-world tables, then the mean over the worlds with the checks."""
    keys = {name: metric_keys(*sets[name]) for name in worlds}
    lines = [
        "# Ablation suite",
        "",
        f"Δ: paired difference with `{baseline}` (same seed), mean [95% t interval] in points; "
        "(steps): at equal steps; (CPU time): the variant's evaluation curve read at the baseline "
        "run's CPU seconds (linear between evaluations; a truncated cosine schedule, so a "
        "conservative figure for the slower variant); CPU s/step ×: median ratio to the baseline "
        f"(training process and its loader workers). {machine}.",
        "",
    ]
    for name, groups in worlds.items():
        lines += world_table(name, groups, keys[name], baseline, budgets.get(name, ""))
    head = [f"Δ {m} (steps)" for m in HEADLINE] + [f"Δ {m} (CPU time)" for m in HEADLINE] + ["checks"]
    full, partial = worlds_with_every_seed(worlds)
    missing = on_every_world({name: worlds[name] for name in full}, baseline)[1]
    lines += [
        "## Mean over the worlds",
        "",
        f"Over {', '.join(full)}, paired by seed"
        + (f" ({', '.join(partial)}: fewer seeds, left out)" if partial else "")
        + (f" ({', '.join(missing)}: not on every world, left out)" if missing else "")
        + ".",
        "",
        *markdown_head(["variant", *head]),
        *overall_rows({name: worlds[name] for name in full}, keys, baseline),
        "",
    ]
    return "\n".join(lines)


def worlds_with_every_seed(worlds: dict[str, Groups]) -> tuple[list[str], list[str]]:
    """(worlds whose runs cover the most seeds, the others): the mean pairs seeds across worlds."""
    seeds = {name: {run.seed for runs in groups.values() for run in runs} for name, groups in worlds.items()}
    most = max(len(s) for s in seeds.values())
    full = [name for name in worlds if len(seeds[name]) == most]
    return full, [name for name in worlds if name not in full]
