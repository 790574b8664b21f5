"""The demo report: loss and accuracy curves (PNG, matplotlib Agg) and a Markdown summary.

Reads what the trainer writes (``metrics.jsonl`` per run: every loss term, the label mode and,
every ``eval_every`` steps, ``eval/<dataset>/<metric>``; the loss weights from ``config.yaml``)
and the final metrics of each model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lightclip.checkpoint import CONFIG_FILE, METRICS_FILE  # noqa: E402

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
WEIGHTED_TERMS = ("instance", "token", "mlm")
# (logged key, panel title); a panel is drawn when some run logs its key
LOSS_PANELS = (
    ("loss", "total loss = weighted sum of the terms"),
    ("instance", "instance term (labels as scheduled)"),
    ("instance_onehot", "one-hot cross entropy (every label mode)"),
    ("token", "token term"),
    ("mlm", "MLM term"),
)
PHASE_COLOURS = {"one_hot": "#dbe9f6", "smooth": "#fdebd0", "importance": "#e3f4e1"}
RECALLS = (
    ("image->text R@1", "retrieval", "text_retrieval_recall@1"),
    ("image->text R@5", "retrieval", "text_retrieval_recall@5"),
    ("text->image R@1", "retrieval", "image_retrieval_recall@1"),
    ("text->image R@5", "retrieval", "image_retrieval_recall@5"),
)
COLUMNS = (
    ("zero-shot top-1", "zeroshot", "acc1"),
    ("zero-shot top-5", "zeroshot", "acc5"),
    *RECALLS,
)


@dataclass
class ReportInputs:
    """``runs``: model name -> run folder (first = the main model); ``final``: model -> the
    dataset name -> metrics of the final checkpoint; ``datasets``: role (``zeroshot``,
    ``retrieval``) -> dataset name as evaluated; ``timings``: phase -> wall seconds."""

    out_dir: Path
    runs: dict[str, Path]
    final: dict[str, dict[str, dict[str, float]]]
    datasets: dict[str, str]
    world: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's log lines in step order."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}: was the run trained?")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(records, key=lambda r: r["step"])


def series(records: list[dict[str, Any]], key: str, scale: float = 1.0) -> tuple[list[int], list[float]]:
    """(steps, values) of the records that hold ``key``."""
    rows = [(r["step"], float(r[key]) * scale) for r in records if isinstance(r.get(key), int | float)]
    return [s for s, _ in rows], [v for _, v in rows]


def label_phases(records: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """Consecutive (label mode, first step, last step) spans of a run."""
    spans: list[tuple[str, int, int]] = []
    previous_step = 0
    for record in records:
        mode = record.get("label_mode")
        if not mode:
            continue
        if spans and spans[-1][0] == mode:
            spans[-1] = (mode, spans[-1][1], record["step"])
        else:
            spans.append((mode, previous_step, record["step"]))
        previous_step = record["step"]
    return spans


def metric(inputs: ReportInputs, model: str, role: str, name: str) -> float | None:
    """A final metric in percent, or None when it is missing (dataset failed)."""
    value = inputs.final.get(model, {}).get(inputs.datasets[role], {}).get(name)
    return None if value is None else 100.0 * float(value)


def zeroshot_classes(inputs: ReportInputs) -> int:
    """Number of zero-shot classes (from the evaluation, else from the world summary)."""
    for results in inputs.final.values():
        count = results.get(inputs.datasets["zeroshot"], {}).get("num_classes")
        if count:
            return int(count)
    return int(inputs.world.get("zeroshot_classes", 0))


def _mark_phases(axis, records: list[dict[str, Any]]) -> None:
    for mode, start, stop in label_phases(records):
        axis.axvspan(start, stop, color=PHASE_COLOURS.get(mode, "#eeeeee"), zorder=0, label=f"labels: {mode}")


def run_weights(run_dir: str | Path) -> dict[str, float]:
    """The non-zero loss weights of a run, from its ``config.yaml`` ({} when absent)."""
    path = Path(run_dir) / CONFIG_FILE
    loss = (yaml.safe_load(path.read_text()) or {}).get("loss", {}) if path.is_file() else {}
    weights = {term: float(loss.get(f"{term}_weight", 0.0)) for term in WEIGHTED_TERMS}
    return {term: weight for term, weight in weights.items() if weight > 0}


def total_formula(weights: dict[str, float]) -> str:
    """``0.8 instance + 0.1 token + 0.1 mlm``."""
    return " + ".join(f"{weight:g} {term}" for term, weight in weights.items())


def _formulas(inputs: ReportInputs) -> list[str]:
    return [f"{name}: {total_formula(w)}" for name, run in inputs.runs.items() if (w := run_weights(run))]


def loss_figure(inputs: ReportInputs) -> Figure:
    """One panel per logged loss key, every model that logs it; label-schedule phases shaded.
    The total panel says which weighted sum each model's total is."""
    records = {name: read_metrics(run) for name, run in inputs.runs.items()}
    main = next(iter(records))
    panels = [(key, title) for key, title in LOSS_PANELS if any(series(rows, key)[0] for rows in records.values())]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for axis, (key, title) in zip(axes[0], panels):
        _mark_phases(axis, records[main])
        for name, rows in records.items():
            steps, values = series(rows, key)
            if steps:
                axis.plot(steps, values, label=name, lw=1.4)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
        if key == "loss" and (formulas := _formulas(inputs)):
            axis.text(0.98, 0.97, "\n".join(formulas), transform=axis.transAxes, ha="right", va="top", fontsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    figure.legend(unique.values(), unique.keys(), loc="lower center", ncol=len(unique), frameon=False)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    return figure


def plot_losses(inputs: ReportInputs, path: Path) -> Path:
    return _save(loss_figure(inputs), path)


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _eval_key(inputs: ReportInputs, role: str, name: str) -> str:
    return f"eval/{inputs.datasets[role]}/{name}"


def percent_top(values: list[float], floor: float = 0.0) -> float:
    """Upper y limit of a percent panel: its data (or ``floor``, e.g. chance) plus 20%, <= 100."""
    return min(100.0, max(1.0, 1.2 * max([*values, floor])))


def evaluation_figure(inputs: ReportInputs) -> Figure:
    """Zero-shot top-1 and retrieval R@1 over steps, every model, chance level marked; each
    panel's y axis fits its data (recall far below 100% stays readable)."""
    records = {name: read_metrics(run) for name, run in inputs.runs.items()}
    panels = [("zero-shot top-1 (%)", "zeroshot", "acc1"), *((f"{t} (%)", r, m) for t, r, m in RECALLS[::2])]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4))
    classes = zeroshot_classes(inputs)
    for axis, (title, role, name) in zip(axes, panels):
        shown: list[float] = []
        for model, rows in records.items():
            steps, values = series(rows, _eval_key(inputs, role, name), 100.0)
            if steps:
                axis.plot(steps, values, marker="o", ms=3, label=model)
                shown += values
        chance = 100.0 / classes if role == "zeroshot" and classes else 0.0
        if chance:
            axis.axhline(chance, ls="--", c="grey", lw=1, label=f"chance ({classes} classes)")
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_ylim(0, percent_top(shown, chance))
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_evaluation(inputs: ReportInputs, path: Path) -> Path:
    return _save(evaluation_figure(inputs), path)


def summary_rows(inputs: ReportInputs) -> list[dict[str, Any]]:
    """One row per model: the final metrics in percent and its training time."""
    rows = []
    for model in inputs.runs:
        row: dict[str, Any] = {"model": model}
        for title, role, name in COLUMNS:
            row[title] = metric(inputs, model, role, name)
        row["train s"] = inputs.timings.get(f"train {model}")
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def markdown_summary(inputs: ReportInputs) -> str:
    rows = summary_rows(inputs)
    heads = list(rows[0])
    lines = ["| " + " | ".join(heads) + " |", "|---|" + "---:|" * (len(heads) - 1)]
    lines += ["| " + " | ".join(_cell(row[h]) for h in heads) + " |" for row in rows]
    return "\n".join(lines)


def print_table(inputs: ReportInputs) -> str:
    """The summary as a plain-text table for the terminal."""
    rows = summary_rows(inputs)
    heads = list(rows[0])
    cells = [[_cell(row[h]) for h in heads] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(heads, widths)))
    body = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    return "\n".join([line, "-" * len(line), *body])


def _timings_table(timings: dict[str, float]) -> str:
    lines = ["| phase | wall s |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in timings.items()]
    lines.append(f"| total | {sum(timings.values()):.1f} |")
    return "\n".join(lines)


def write_report(inputs: ReportInputs) -> Path:
    """Write ``plots/*.png`` and ``report.md`` under ``inputs.out_dir``; returns the report."""
    out = Path(inputs.out_dir)
    (out / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    losses = plot_losses(inputs, out / PLOTS_DIR / "losses.png")
    evaluation = plot_evaluation(inputs, out / PLOTS_DIR / "evaluation.png")
    classes = zeroshot_classes(inputs)
    world = inputs.world
    text = [
        "# LightCLIP demo report",
        "",
        f"Synthetic world: {world.get('train_samples', '?')} training pairs "
        f"({world.get('noisy_captions', '?')} with a caption of another scene), "
        f"{world.get('zeroshot_images', '?')} held-out zero-shot images in {classes} classes "
        f"(colour x shape; chance level {100.0 / max(classes, 1):.1f}%), "
        f"{world.get('retrieval_images', '?')} retrieval images with "
        f"{world.get('config', {}).get('captions_per_image', '?')} captions each.",
        f"Shards: {inputs.build.get('samples', '?')} samples in {inputs.build.get('shards', '?')} "
        f"shards, downloaded over HTTP from 127.0.0.1 by the pipeline build on a Dask LocalCluster.",
        "",
        "## Final metrics (%)",
        "",
        markdown_summary(inputs),
        "",
        "Retrieval: one image has several captions; image->text counts a hit when any of its "
        "captions is in the top k. Scenes repeat (same colour and shape), so recall@1 is bounded "
        "well below 100% by design.",
        "",
        "## Loss terms over steps",
        "",
        "Shaded: the label schedule of the first model (one-hot, label smoothing, "
        "importance-aware). Each total is that model's weighted sum of its own terms (the "
        "weights are printed in the panel), so totals of different objectives do not compare; "
        "the one-hot cross entropy (CLIP's instance loss with one-hot labels, logged in every "
        "label mode) does.",
        "",
        f"![losses]({PLOTS_DIR}/{losses.name})",
        "",
        "## Zero-shot accuracy and retrieval recall over steps",
        "",
        f"![evaluation]({PLOTS_DIR}/{evaluation.name})",
        "",
        "## Wall time per phase",
        "",
        _timings_table(inputs.timings),
        "",
    ]
    path = out / REPORT_FILE
    path.write_text("\n".join(text))
    return path
