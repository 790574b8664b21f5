"""Report pieces on hand-made metrics, and the demo's override routing."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest
import yaml

from lightclip_demo.cli import route_overrides
from lightclip_demo.demo_report import (
    ReportInputs,
    evaluation_figure,
    label_phases,
    loss_figure,
    print_table,
    series,
    summary_rows,
    write_report,
)
from pipeline.base.configs import ConfigError

ZS, RET = "imagefolder:/w/zeroshot", "karpathy:/w/retrieval"


def records(modes: list[str], with_token: bool) -> list[dict]:
    rows = []
    for step, mode in enumerate(modes, start=1):
        row = {
            "step": step,
            "loss": 3.0 - 0.1 * step,
            "instance": 3.2 - 0.1 * step,
            "label_mode": mode,
            "instance_onehot": 3.1 - 0.1 * step,
        }
        if with_token:
            row.update(token=0.9, mlm=6.0 - 0.2 * step)
        if step % 2 == 0:
            row.update(
                {
                    f"eval/{ZS}/acc1": 0.1 * step,
                    f"eval/{RET}/text_retrieval_recall@1": 0.05 * step,
                    f"eval/{RET}/image_retrieval_recall@1": 0.04 * step,
                }
            )
        rows.append(row)
    return rows


def write_run(folder, rows, weights: dict | None = None) -> None:
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    if weights is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump({"loss": weights, "run": {"seed": 0}}))


def test_label_phases_are_consecutive_spans():
    modes = ["one_hot", "one_hot", "smooth", "smooth", "importance", "importance"]
    assert label_phases(records(modes, True)) == [("one_hot", 0, 2), ("smooth", 2, 4), ("importance", 4, 6)]
    assert label_phases(records(["one_hot"] * 3, False)) == [("one_hot", 0, 3)]


def test_series_takes_the_rows_that_hold_the_key():
    steps, values = series(records(["one_hot"] * 4, False), f"eval/{ZS}/acc1", 100.0)
    assert steps == [2, 4] and values == pytest.approx([20.0, 40.0])


@pytest.fixture()
def inputs(tmp_path) -> ReportInputs:
    write_run(
        tmp_path / "lightclip",
        records(["one_hot", "one_hot", "smooth", "importance"], True),
        {"instance_weight": 0.8, "token_weight": 0.1, "mlm_weight": 0.1},
    )
    write_run(
        tmp_path / "clip",
        records(["one_hot"] * 4, False),
        {"instance_weight": 1.0, "token_weight": 0.0, "mlm_weight": 0.0},
    )
    final = {
        "LightCLIP": {
            ZS: {"acc1": 0.85, "acc5": 0.99, "num_classes": 30},
            RET: {f"{d}_retrieval_recall@{k}": 0.5 for d in ("text", "image") for k in (1, 5)},
        },
        "CLIP": {ZS: {"acc1": 0.8, "acc5": 0.97, "num_classes": 30}, RET: {"error": "missing"}},
    }
    return ReportInputs(
        tmp_path,
        {"LightCLIP": tmp_path / "lightclip", "CLIP": tmp_path / "clip"},
        final,
        {"zeroshot": ZS, "retrieval": RET},
        {"train_samples": 100},
        {"samples": 100},
        {"world": 1.0, "train LightCLIP": 10.0, "train CLIP": 9.0},
    )


def test_summary_rows_in_percent_missing_as_none(inputs):
    light, clip = summary_rows(inputs)
    assert light["zero-shot top-1"] == pytest.approx(85.0) and light["image->text R@5"] == pytest.approx(50.0)
    assert clip["zero-shot top-1"] == pytest.approx(80.0) and clip["text->image R@1"] is None
    assert light["train s"] == 10.0
    table = print_table(inputs).splitlines()
    assert table[0].startswith("model") and table[2].split()[:2] == ["LightCLIP", "85.0"]
    assert "n/a" in table[3]


def test_write_report_states_classes_and_chance(inputs):
    report = write_report(inputs).read_text()
    assert "30 classes" in report and "chance level 3.3%" in report
    for name in ("losses.png", "evaluation.png"):
        assert (inputs.out_dir / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert "| total | 20.0 |" in report


def test_loss_panels_name_the_weighted_sums_and_show_the_one_hot_curve(inputs):
    figure = loss_figure(inputs)
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == [
        "total loss = weighted sum of the terms",
        "instance term (labels as scheduled)",
        "one-hot cross entropy (every label mode)",
        "token term",
        "MLM term",
    ]
    total, _, onehot, token, _ = figure.axes
    assert [t.get_text() for t in total.texts] == ["LightCLIP: 0.8 instance + 0.1 token + 0.1 mlm\nCLIP: 1 instance"]
    assert [line.get_label() for line in onehot.lines] == ["LightCLIP", "CLIP"]
    assert list(onehot.lines[0].get_ydata()) == pytest.approx([3.0, 2.9, 2.8, 2.7])
    assert [line.get_label() for line in token.lines] == ["LightCLIP"]
    plt.close(figure)


def test_loss_panels_without_a_one_hot_log_leave_it_out(tmp_path):
    rows = [{k: v for k, v in row.items() if k != "instance_onehot"} for row in records(["one_hot"] * 3, False)]
    write_run(tmp_path / "old", rows)
    inputs = ReportInputs(tmp_path, {"CLIP": tmp_path / "old"}, {}, {"zeroshot": ZS, "retrieval": RET})
    figure = loss_figure(inputs)
    assert [a.get_title() for a in figure.axes] == [
        "total loss = weighted sum of the terms",
        "instance term (labels as scheduled)",
    ]
    assert len(figure.axes[0].texts) == 0  # no config.yaml: no formula
    plt.close(figure)


def test_evaluation_panels_fit_their_data(inputs):
    figure = evaluation_figure(inputs)
    zeroshot, text_r1, image_r1 = figure.axes
    assert zeroshot.get_ylim() == pytest.approx((0, 48.0))  # top-1 peaks at 40%
    assert text_r1.get_ylim() == pytest.approx((0, 24.0))  # R@1 peaks at 20%
    assert image_r1.get_ylim() == pytest.approx((0, 19.2))
    plt.close(figure)


def test_overrides_are_routed_by_section():
    routed = route_overrides(["world.seed=1", "train.optim.lr=1e-3", "clip.optim.max_steps=5", "data.output=x"])
    assert routed["world"] == ["seed=1"] and routed["data"] == ["output=x"]
    assert routed["lightclip"] == ["optim.lr=1e-3"]
    assert routed["clip"] == ["optim.lr=1e-3", "optim.max_steps=5"]
    with pytest.raises(ConfigError, match="must start with"):
        route_overrides(["optim.lr=1"])
