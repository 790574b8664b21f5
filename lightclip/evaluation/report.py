"""Results as JSON and as a Markdown table (percentages)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

CLASSIFICATION_COLUMNS = ("acc1", "acc5", "mean_per_class_recall")


def _percent(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no NaN or Infinity)."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def markdown_table(results: dict[str, dict[str, float]], failures: bool = True) -> str:
    """One table for classification, one for retrieval, and (``failures``) a list of the
    datasets that failed."""
    classification = {n: r for n, r in results.items() if "acc1" in r}
    retrieval = {n: r for n, r in results.items() if any(k.endswith("recall@1") for k in r)}
    failed = {n: r["error"] for n, r in results.items() if "error" in r}
    parts = []
    if classification:
        rows = ["| dataset | top-1 | top-5 | mean per-class recall | images |", "|---|---:|---:|---:|---:|"]
        for name, r in classification.items():
            rows.append(
                f"| {name} | {_percent(r['acc1'])} | {_percent(r['acc5'])} | "
                f"{_percent(r['mean_per_class_recall'])} | {int(r.get('num_samples', 0))} |"
            )
        parts.append("\n".join(rows))
    if retrieval:
        ks = sorted({int(k.rsplit("@", 1)[1]) for r in retrieval.values() for k in r if "@" in k})
        head = " | ".join([f"image->text R@{k}" for k in ks] + [f"text->image R@{k}" for k in ks])
        rows = [f"| dataset | {head} | images | captions |", "|---|" + "---:|" * (2 * len(ks) + 2)]
        for name, r in retrieval.items():
            cells = [_percent(r[f"text_retrieval_recall@{k}"]) for k in ks]
            cells += [_percent(r[f"image_retrieval_recall@{k}"]) for k in ks]
            rows.append(f"| {name} | {' | '.join(cells)} | {int(r['num_images'])} | {int(r['num_texts'])} |")
        parts.append("\n".join(rows))
    if failed and failures:
        parts.append("\n".join(f"- **{name}: not evaluated.** {msg.splitlines()[0]}" for name, msg in failed.items()))
    return "\n\n".join(parts) + "\n"


def write_results(
    results: dict[str, dict[str, float]], out_dir: str | Path, meta: dict | None = None
) -> tuple[Path, Path]:
    """``results.json`` ({"meta": ..., "results": ...}) and ``results.md`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    payload = {"meta": meta or {}, "results": results}
    json_path.write_text(json.dumps(strict_json(payload), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown_table(results), encoding="utf-8")
    return json_path, md_path
