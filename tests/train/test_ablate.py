"""The ablation: tables from known runs, and a tiny end-to-end run that resumes."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from lightclip_demo.ablation_report import RunResult, markdown

sys.path.insert(0, str(Path(__file__).parents[1] / "eval"))
from eval_fabricate import image_folder  # noqa: E402

ZS = "imagefolder:zs"
TINY_RECIPE = str(Path(__file__).parents[2] / "recipes" / "train" / "tiny.yaml")
TINY_VARIANTS = {"CLIP": ["loss.label_mode=one_hot", "loss.token_weight=0", "loss.mlm_weight=0"], "Full": []}
TINY_OVERRIDES = ["optim.batch_size=8", "data.workers=0", "model.image_encoder=resnet18"]


def _tiny_data(tmp_path: Path) -> dict:
    """Two 16-sample shards with their tokenizer and a 4-image zero-shot folder: the ``data``,
    ``datasets`` and ``root`` of an ablation (or of a suite world)."""
    from synthetic import write_shards, write_tokenizer

    data = tmp_path / "shards"
    data.mkdir()
    write_shards(data, [16, 16])
    write_tokenizer(data)
    image_folder(tmp_path / "zs", {"red circle": 2, "blue square": 2}, size=32)
    return {"data": str(data), "datasets": [ZS], "root": str(tmp_path)}


def _run(variant: str, seed: int, acc: float, seconds: float, curve: list) -> RunResult:
    return RunResult(variant, seed, 100, seconds, seconds + 5, {ZS: {"acc1": acc, "acc5": 1.0}}, curve)


def test_tables_report_mean_std_paired_delta_and_equal_time():
    runs = [
        _run("CLIP", 0, 0.50, 100.0, [(50, 50.0, {f"{ZS}/acc1": 0.30}), (100, 100.0, {f"{ZS}/acc1": 0.50})]),
        _run("CLIP", 1, 0.60, 100.0, [(50, 50.0, {f"{ZS}/acc1": 0.35}), (100, 100.0, {f"{ZS}/acc1": 0.60})]),
        _run("Full", 0, 0.70, 200.0, [(50, 100.0, {f"{ZS}/acc1": 0.40}), (100, 200.0, {f"{ZS}/acc1": 0.70})]),
        _run("Full", 1, 0.66, 200.0, [(50, 100.0, {f"{ZS}/acc1": 0.46}), (100, 200.0, {f"{ZS}/acc1": 0.66})]),
    ]
    text = markdown(runs, "CLIP", [ZS], "test machine")
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in text.splitlines()
        if line.startswith("| CLIP") or line.startswith("| Full")
    }
    equal_steps = [line for line in text.splitlines() if line.startswith("| Full")]
    assert equal_steps[0].split("|")[2].strip() == "2"  # seeds
    assert equal_steps[0].split("|")[3].strip() == "68.0 ± 2.8"  # mean, sample std of 70 and 66
    assert equal_steps[0].split("|")[5].strip() == "13.0 ± 9.9"  # paired deltas +20 and +6
    assert equal_steps[0].split("|")[6].strip() == "2.000"  # seconds per step
    assert equal_steps[1].split("|")[2].strip() == "43.0 ± 4.2"  # at 100 s: the step-50 evaluations
    assert equal_steps[1].split("|")[3].strip() == "50"
    assert rows and "Equal wall time (100 s" in text


@pytest.mark.slow
def test_ablation_end_to_end_writes_tables_and_resumes(tmp_path):
    from lightclip_demo.ablate import AblationConfig, run_ablation

    config = AblationConfig(
        out_dir=str(tmp_path / "abl"),
        recipe=TINY_RECIPE,
        **_tiny_data(tmp_path),
        seeds=[0],
        baseline="CLIP",
        variants=TINY_VARIANTS,
        overrides=["optim.max_steps=4", "eval_every=2", *TINY_OVERRIDES],
        parallel=2,
    )
    report = run_ablation(config)
    text = report.read_text()
    assert "| CLIP |" in text and "| Full |" in text and (report.parent / "ablation.png").stat().st_size > 0
    runs = json.loads((report.parent / "ablation.json").read_text())["runs"]
    assert {(r["variant"], r["seed"]) for r in runs} == {("CLIP", 0), ("Full", 0)}
    assert all(r["steps"] == 4 and r["train_seconds"] > 0 and [c[0] for c in r["curve"]] == [2, 4] for r in runs)
    saved = sorted((tmp_path / "abl" / "runs").glob("*/seed0/result.json"))
    stamps = [p.stat().st_mtime_ns for p in saved]
    run_ablation(config)  # a rerun trains nothing: every result is on disk
    assert [p.stat().st_mtime_ns for p in saved] == stamps


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_suite_end_to_end_over_two_data_sets_writes_the_report_and_resumes(tmp_path):
    from lightclip_demo.suite import SuiteConfig, run_suite

    world = _tiny_data(tmp_path)
    config = SuiteConfig(
        out_dir=str(tmp_path / "suite"),
        recipe=TINY_RECIPE,
        worlds={"one": dict(world), "two": {**world, "overrides": ["optim.lr=1e-3"]}, "three": {**world, "seeds": [1]}},
        seeds=[0, 1],
        baseline="CLIP",
        variants=TINY_VARIANTS,
        overrides=["optim.max_steps=2", "eval_every=1", *TINY_OVERRIDES],
        parallel=2,
    )
    report = run_suite(config)
    text = report.read_text()
    assert "### one" in text and "### two" in text and "## Mean over the worlds" in text
    payload = json.loads((report.parent / "suite.json").read_text())
    runs = [r for w in payload["worlds"].values() for r in w["runs"]]
    assert len(runs) == 10 and all(r["cpu_seconds"] > 0 for r in runs)
    assert {r["seed"] for r in payload["worlds"]["three"]["runs"]} == {1}  # a world's own seeds
    assert (tmp_path / "suite" / "two" / "ablation.md").is_file()
    saved = sorted((tmp_path / "suite").glob("*/runs/*/seed*/result.json"))
    stamps = [p.stat().st_mtime_ns for p in saved]
    run_suite(config)  # nothing trains again
    assert len(saved) == 10 and [p.stat().st_mtime_ns for p in saved] == stamps
    run_suite(replace(config, seeds=[0, 1, 2], report_only=True))  # seed 2 is not on disk: not trained
    assert not list((tmp_path / "suite").glob("*/runs/*/seed2"))
    payload = json.loads((report.parent / "suite.json").read_text())
    assert sorted({r["seed"] for w in payload["worlds"].values() for r in w["runs"]}) == [0, 1]
    probed = run_suite(replace(config, report_only=True, probe=True)).read_text()  # the runs' own checkpoints
    section = probed.split("## What the image tower separates")[1]
    assert "### one" in section and "| CLIP | 2 |" in section and "| Full | 2 |" in section
