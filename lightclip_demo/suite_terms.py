"""What each objective term reached in the suite's runs: a table that explains the Δ tables.

Read from every run's ``metrics.jsonl`` (the mean over the last fifth of the logged steps, then
over the seeds): CLIP's one-hot instance loss and logit scale; the token InfoNCE against its
chance level (``log P`` with the pair's own patches as negatives, ``log(B P)`` with the batch's);
the text-only and the fused MLM losses and their gap, the nats the fused pass gains from the
image (near 0: the fusion reads little of the image).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from pathlib import Path

import yaml

from lightclip.modelconfig import stage_positions
from lightclip_demo.ablation_report import markdown_head

TAIL = 0.2  # the last fifth of the logged steps
COLUMNS = ("instance_onehot", "logit_scale", "token", "token chance", "mlm_text", "mlm_fused", "MLM gap")


def logged_lines(run_dir: Path) -> list[dict]:
    """The training lines of ``metrics.jsonl`` (a torn last line is left out)."""
    lines = []
    for text in (run_dir / "metrics.jsonl").read_text().splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and "loss" in line:
            lines.append(line)
    return lines


def token_chance(config: dict) -> float | None:
    """The token InfoNCE of collapsed tokens: log of the number of negatives plus the positive."""
    model, loss = config.get("model", {}), config.get("loss", {})
    if not loss.get("token_weight"):
        return None
    patches = stage_positions(int(model["image_size"]), int(model["token_stage"]))
    batch = int(config.get("optim", {}).get("batch_size", 1))
    per_word = patches * batch if loss.get("token", {}).get("negatives") == "batch" else patches
    return math.log(per_word)


def run_terms(run_dir: Path) -> dict[str, float]:
    """One run's term values over its last logged steps (absent terms left out)."""
    lines = logged_lines(run_dir)
    tail = lines[-max(1, round(len(lines) * TAIL)) :] if lines else []
    values = {
        key: statistics.fmean(line[key] for line in tail)
        for key in ("instance_onehot", "logit_scale", "token", "mlm_text", "mlm_fused")
        if tail and all(isinstance(line.get(key), (int, float)) for line in tail)
    }
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    chance = token_chance(config or {})
    if chance is not None and "token" in values:
        values["token chance"] = chance
    if "mlm_text" in values and "mlm_fused" in values:
        values["MLM gap"] = values["mlm_text"] - values["mlm_fused"]
    return values


def variant_terms(run_dirs: Iterable[Path]) -> dict[str, float]:
    """The mean over the runs (seeds) of each term a run logged."""
    per_run = [run_terms(d) for d in run_dirs if (d / "metrics.jsonl").is_file()]
    keys = [key for key in COLUMNS if per_run and all(key in terms for terms in per_run)]
    return {key: statistics.fmean(terms[key] for terms in per_run) for key in keys}


def terms_table(name: str, variants: dict[str, list[Path]]) -> list[str]:
    """Markdown: one row per variant of a world, its terms at the end of training."""
    head = ["variant", *COLUMNS]
    rows = []
    for variant, run_dirs in variants.items():
        terms = variant_terms(run_dirs)
        rows.append(f"| {variant} | " + " | ".join(f"{terms[c]:.3f}" if c in terms else "-" for c in COLUMNS) + " |")
    return [
        f"### {name}: the terms at the end of training",
        "",
        *markdown_head(head),
        *rows,
        "",
    ]
