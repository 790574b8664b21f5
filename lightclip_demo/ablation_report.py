"""Tables (Markdown), JSON and a plot of an ablation's runs (see ``lightclip_demo.ablate``)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RETRIEVAL_COLUMNS = (
    ("I->T R@1", "text_retrieval_recall@1"),
    ("I->T R@5", "text_retrieval_recall@5"),
    ("T->I R@1", "image_retrieval_recall@1"),
    ("T->I R@5", "image_retrieval_recall@5"),
)


@dataclass
class RunResult:
    """One (variant, seed): final metrics per dataset (fractions), training seconds without
    evaluation, the evaluation curve [(step, training seconds so far, metrics)], the machine it
    trained on and ``cpu_seconds``, the CPU time of the whole training process and the
    processes it waited for (loader workers; 0.0 where it was not recorded)."""

    variant: str
    seed: int
    steps: int
    train_seconds: float
    wall_seconds: float
    metrics: dict[str, dict[str, float]]
    curve: list[Any] = field(default_factory=list)
    machine: str = ""
    cpu_seconds: float = 0.0


def markdown_head(columns: list[str]) -> list[str]:
    """A Markdown table's header row and the separator row under it."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def mean_std(values: list[float | None]) -> str:
    """``mean ± sample std`` of the finite values (a metric can be undefined, e.g. top-5 of
    fewer than 5 classes)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {std:.1f}"


def by_variant(results: list[RunResult]) -> dict[str, list[RunResult]]:
    grouped: dict[str, list[RunResult]] = {}
    for result in results:
        grouped.setdefault(result.variant, []).append(result)
    return {name: sorted(runs, key=lambda r: r.seed) for name, runs in grouped.items()}


def headline(datasets: list[str], results: list[RunResult]) -> tuple[str, str | None]:
    """(first classification set, first retrieval set) among ``datasets``."""
    sample = results[0].metrics
    classification = next(d for d in datasets if "acc1" in sample.get(d, {}))
    retrieval = next((d for d in datasets if "text_retrieval_recall@1" in sample.get(d, {})), None)
    return classification, retrieval


def percent(run: RunResult, dataset: str | None, metric: str) -> float | None:
    value = run.metrics.get(dataset or "", {}).get(metric)
    return None if value is None else 100 * value


def equal_steps_rows(groups: dict[str, list[RunResult]], cls: str, ret: str | None, baseline: str) -> list[str]:
    base = {r.seed: percent(r, cls, "acc1") for r in groups[baseline]}
    rows = []
    for name, runs in groups.items():
        cells = [mean_std([percent(r, cls, "acc1") for r in runs]), mean_std([percent(r, cls, "acc5") for r in runs])]
        deltas = [percent(r, cls, "acc1") - base[r.seed] for r in runs if r.seed in base]
        cells.append("-" if name == baseline else mean_std(deltas))
        for _, metric in RETRIEVAL_COLUMNS if ret else ():
            cells.append(mean_std([percent(r, ret, metric) for r in runs]))
        cells.append(f"{statistics.mean(r.train_seconds / max(r.steps, 1) for r in runs):.3f}")
        rows.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return rows


def acc_at_seconds(run: RunResult, cls: str, budget: float) -> float | None:
    """Zero-shot top-1 (%) at the last evaluation within ``budget`` training seconds."""
    within = [metrics for _, seconds, metrics in run.curve if seconds <= budget * 1.02 and f"{cls}/acc1" in metrics]
    return 100 * within[-1][f"{cls}/acc1"] if within else None


def equal_time_rows(groups: dict[str, list[RunResult]], cls: str, budget: float) -> list[str]:
    rows = []
    for name, runs in groups.items():
        values = [v for v in (acc_at_seconds(r, cls, budget) for r in runs) if v is not None]
        steps = [max((s for s, sec, _ in r.curve if sec <= budget * 1.02), default=0) for r in runs]
        rows.append(f"| {name} | {mean_std(values)} | {statistics.mean(steps):.0f} |")
    return rows


def markdown(results: list[RunResult], baseline: str, datasets: list[str], machine: str) -> str:
    groups = by_variant(results)
    cls, ret = headline(datasets, results)
    seeds = sorted({r.seed for r in results})
    budget = statistics.mean(r.train_seconds for r in groups[baseline])
    head = ["variant", "seeds", "zero-shot top-1", "top-5", f"Δ top-1 vs {baseline}"]
    head += [label for label, _ in RETRIEVAL_COLUMNS] if ret else []
    lines = [
        "# Ablation",
        "",
        f"Zero-shot on `{cls}`"
        + (f", retrieval on `{ret}`" if ret else "")
        + f"; mean ± std over the seeds each variant ran (of {seeds}); {results[0].steps} steps per run; {machine}.",
        "",
        "## Equal steps",
        "",
        *markdown_head([*head, "train s/step"]),
        *equal_steps_rows(groups, cls, ret, baseline),
        "",
        f"Δ is the paired difference with `{baseline}` (same seed), mean ± std over seeds.",
        "",
        f"## Equal wall time ({budget:.0f} s of training, the mean of `{baseline}`)",
        "",
        "| variant | zero-shot top-1 | steps reached |",
        "|---|---|---|",
        *equal_time_rows(groups, cls, budget),
        "",
        "Accuracy at the last evaluation inside the budget (evaluations every `eval_every` steps).",
        "",
    ]
    return "\n".join(lines)


def plot(results: list[RunResult], cls: str, path: Path) -> None:
    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    for name, runs in by_variant(results).items():
        for index, run in enumerate(runs):
            points = [(s, sec, m[f"{cls}/acc1"] * 100) for s, sec, m in run.curve if f"{cls}/acc1" in m]
            if not points:
                continue
            steps, seconds, acc = zip(*points)
            colour = by_step.plot(steps, acc, alpha=0.8, label=name if index == 0 else None)[0].get_color()
            by_time.plot(seconds, acc, alpha=0.8, color=colour)
    by_step.set(xlabel="step", ylabel="zero-shot top-1 (%)", title="equal steps")
    by_time.set(xlabel="training seconds", title="equal wall time")
    by_step.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_outputs(out_dir: Path, results: list[RunResult], baseline: str, datasets: list[str], machine: str) -> Path:
    """``ablation.md``, ``ablation.json`` and ``ablation.png`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cls, _ = headline(datasets, results)
    report = out_dir / "ablation.md"
    report.write_text(markdown(results, baseline, datasets, machine) + "\n![curves](ablation.png)\n")
    payload = {"machine": machine, "baseline": baseline, "datasets": datasets, "runs": [asdict(r) for r in results]}
    (out_dir / "ablation.json").write_text(json.dumps(payload, indent=1) + "\n")
    plot(results, cls, out_dir / "ablation.png")
    return report
