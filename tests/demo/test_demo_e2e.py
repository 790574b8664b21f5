"""A shortened demo through the real entry point: world, local server, Dask build, two
trainings, evaluation, report."""

from __future__ import annotations

import json
import re

import pytest

from lightclip_demo.cli import main

pytestmark = pytest.mark.slow

SHORT = [
    "world.train_samples=160",
    "world.zeroshot_per_class=1",
    "world.retrieval_images=10",
    "data.shards.samples_per_shard=40",
    "data.download.samples_per_unit=80",
    "train.optim.batch_size=16",
    "train.optim.max_steps=6",
    "train.eval_every=3",
    "train.run.log_every=1",
    "train.run.progress=false",
    "train.data.shuffle_buffer=40",
    "train.data.shuffle_initial=10",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = main(["--out", str(out), *SHORT])
    return code, out


def table_rows(report: str) -> list[list[str]]:
    section = report.split("## Final metrics (%)", 1)[1].split("##", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_demo_writes_a_report_whose_numbers_parse(demo):
    code, out = demo
    assert code == 0
    report = (out / "report.md").read_text()
    rows = table_rows(report)
    assert [row[0] for row in rows] == ["LightCLIP", "CLIP"]
    for row in rows:
        values = [float(cell) for cell in row[1:-1]]  # the last column is the training time
        assert len(values) == 6 and all(0.0 <= v <= 100.0 for v in values), row
        assert float(row[-1]) > 0
    assert "30 classes" in report and "chance level 3.3%" in report
    for image in re.findall(r"\]\((plots/[^)]+\.png)\)", report):
        data = (out / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert len(re.findall(r"\.png\)", report)) == 2


def test_demo_runs_log_every_term_and_eval_over_steps(demo):
    _, out = demo
    lines = [json.loads(x) for x in (out / "lightclip" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6]
    assert {"instance", "token", "mlm_text", "mlm_fused", "mlm", "loss"} <= set(lines[0])
    assert [r["label_mode"] for r in lines] == ["one_hot"] * 6  # the demo recipe pins one-hot labels
    evaluated = [r["step"] for r in lines if any(k.endswith("/acc1") for k in r)]
    assert evaluated == [3, 6]
    baseline = [json.loads(x) for x in (out / "clip" / "metrics.jsonl").read_text().splitlines()]
    assert "token" not in baseline[0] and {r["label_mode"] for r in baseline} == {"one_hot"}
    results = json.loads((out / "results.json").read_text())
    assert set(results["final"]) == {"LightCLIP", "CLIP"}
    assert results["build"]["samples"] == 160 and results["build"]["http_requests"] >= 160
    assert set(results["timings"]) >= {"world", "build", "train LightCLIP", "train CLIP", "evaluate"}


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["--out", str(tmp_path), *SHORT]) == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"
