"""Results in CLIP_benchmark's shape: one JSON per (model, dataset), merged into one CSV.

Each file is ``{"dataset", "model", "pretrained", "task", "metrics", "language"}`` with
``task`` ``zeroshot_classification`` (acc1, acc5, mean_per_class_recall) or
``zeroshot_retrieval`` (image_retrieval_recall@k, text_retrieval_recall@k): the names
CLIP_benchmark writes, so its tables and ours merge. Strict JSON: a non-finite metric is null.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from pathlib import Path

from lightclip.evaluation.report import strict_json
from pipeline.base.configs import ConfigError

REQUIRED = ("dataset", "model", "task", "metrics")
LEAD_COLUMNS = ("dataset", "model", "pretrained", "task")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ResultsError(ConfigError):
    """A result file or folder that cannot be merged (a user error: one line, exit code 2)."""


def task_of(metrics: dict) -> str:
    return "zeroshot_classification" if "acc1" in metrics else "zeroshot_retrieval"


def file_name(dataset: str, model: str, task: str) -> str:
    """``benchmark_<dataset>_<model>_<task>.json`` with every unsafe run of characters as ``_``."""
    return "_".join(_UNSAFE.sub("_", part).strip("_") for part in ("benchmark", dataset, model, task)) + ".json"


def write_benchmark_files(
    results: dict[str, dict], out_dir: str | Path, model: str, pretrained: str = ""
) -> list[Path]:
    """One file per evaluated dataset of ``results`` (those that failed have none)."""
    out, written = Path(out_dir), []
    out.mkdir(parents=True, exist_ok=True)
    for dataset, metrics in results.items():
        if "error" in metrics:
            continue
        task = task_of(metrics)
        record = {
            "dataset": dataset,
            "model": model,
            "pretrained": pretrained,
            "task": task,
            "metrics": metrics,
            "language": "en",
        }
        path = out / file_name(dataset, model, task)
        path.write_text(json.dumps(strict_json(record), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def read_records(folders: Iterable[str | Path]) -> list[dict]:
    """Every CLIP_benchmark-shaped JSON under ``folders`` (other JSON files are skipped)."""
    records = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ResultsError(f"{folder} is not a directory of result files")
        for path in sorted(folder.rglob("*.json")):
            record = _read(path)
            if (
                isinstance(record, dict)
                and all(key in record for key in REQUIRED)
                and isinstance(record["metrics"], dict)
            ):
                records.append(record)
    if not records:
        raise ResultsError(f"no result files (JSON with {', '.join(REQUIRED)}) under {', '.join(map(str, folders))}")
    return records


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
        raise ResultsError(f"{path}: not valid JSON ({err}); fix or remove it") from err


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def merge_to_csv(folders: Iterable[str | Path], out_csv: str | Path) -> int:
    """Write one CSV row per record (lead columns, then every metric seen, sorted); returns the rows."""
    folders = list(folders)
    records = read_records(folders)
    metrics = sorted({key for record in records for key in record["metrics"]})
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*LEAD_COLUMNS, *metrics])
        for record in sorted(records, key=lambda r: (str(r["dataset"]), str(r["model"]), str(r.get("pretrained", "")))):
            writer.writerow(
                [record.get(key, "") for key in LEAD_COLUMNS]
                + ["" if record["metrics"].get(m) is None else record["metrics"][m] for m in metrics]
            )
    return len(records)
