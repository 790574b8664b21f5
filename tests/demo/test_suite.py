"""The ablation suite: t intervals, paired and equal-CPU-time differences, the report (its
end-to-end run is in tests/train/test_ablate.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lightclip_demo.ablation_report import RunResult
from lightclip_demo.suite import SuiteConfig, SuiteWorld, seed_major
from lightclip_demo.suite_report import suite_markdown, verdict
from lightclip_demo.suite_stats import (
    MEAN_R1,
    ZERO_SHOT,
    cost_ratio,
    equal_time_deltas,
    metric_keys,
    t_interval,
    value_at_step,
)

ZS, RET = "imagefolder:zs", "karpathy:ret"
KEYS = metric_keys(ZS, RET)


def _run(variant: str, seed: int, acc: float, r1: tuple[float, float], cpu: float, curve: list) -> RunResult:
    metrics = {ZS: {"acc1": acc}, RET: {"text_retrieval_recall@1": r1[0], "image_retrieval_recall@1": r1[1]}}
    return RunResult(variant, seed, 100, cpu, cpu, metrics, curve, "test machine", cpu_seconds=cpu)


def _curve(points: list[tuple[int, float]]) -> list:
    return [(step, 0.0, {f"{ZS}/acc1": acc}) for step, acc in points]


def test_t_interval_matches_the_textbook_formula():
    got = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # t(0.975, 4) = 2.7764451, s = sqrt(2.5)
    assert got.mean == 3.0 and got.half_width == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert got.text() == "+3.0 [+1.0, +5.0]"
    assert math.isnan(t_interval([2.0]).half_width) and t_interval([2.0]).text() == "+2.0"
    assert t_interval([]).text() == "-"


def test_curve_is_interpolated_between_evaluations_and_clamped_at_the_ends():
    run = _run("A", 0, 0.5, (0.1, 0.1), 100.0, _curve([(25, 0.2), (50, 0.4), (100, 0.5)]))
    assert value_at_step(run, f"{ZS}/acc1", 10) == 0.2
    assert value_at_step(run, f"{ZS}/acc1", 75) == pytest.approx(0.45)
    assert value_at_step(run, f"{ZS}/acc1", 500) == 0.5


def test_equal_time_reads_the_slower_run_at_the_baseline_cpu_seconds():
    base = [_run("CLIP", s, 0.40, (0.1, 0.1), 100.0, _curve([(50, 0.3), (100, 0.4)])) for s in (0, 1)]
    slow = [_run("Light", s, 0.50, (0.1, 0.1), 200.0, _curve([(50, 0.35 + s * 0.1), (100, 0.5)])) for s in (0, 1)]
    assert cost_ratio(slow, base) == 2.0
    deltas = equal_time_deltas(slow, base, KEYS[ZERO_SHOT])  # 100 CPU s = step 50 of the slow runs
    assert deltas == {0: pytest.approx(-5.0), 1: pytest.approx(5.0)}


def _world(shift: float) -> dict[str, list[RunResult]]:
    groups: dict[str, list[RunResult]] = {"CLIP": [], "Light": []}
    for seed in range(5):
        noise = (seed - 2) * 0.002
        groups["CLIP"].append(_run("CLIP", seed, 0.40 + noise, (0.20, 0.10), 100.0, _curve([(100, 0.40 + noise)])))
        acc = 0.40 + noise + shift
        groups["Light"].append(_run("Light", seed, acc, (0.22, 0.12), 110.0, _curve([(50, 0.40 + noise), (100, acc)])))
    return groups


def test_report_gives_per_world_and_mean_intervals_and_the_default_checks():
    one_seed = {name: runs[:1] for name, runs in _world(0.5).items()}
    worlds = {"a": _world(0.05), "b": _world(0.01), "c": one_seed}
    sets = {"a": (ZS, RET), "b": (ZS, RET), "c": (ZS, RET)}
    text = suite_markdown(worlds, sets, "CLIP", {"a": "budget a"}, "test machine")
    rows = [line for line in text.splitlines() if line.startswith("| Light |")]
    assert len(rows) == 4  # worlds a, b, c, then the mean over worlds
    assert "+5.0 [+5.0, +5.0]" in rows[0] and "+1.0 [+1.0, +1.0]" in rows[1] and "+50.0 |" in rows[2]
    assert "+3.0 [+3.0, +3.0]" in rows[3]  # the mean over a and b, paired by seed: c has one seed
    assert "Over a, b, paired by seed (c: fewer seeds, left out)" in text
    del worlds["c"]
    assert "1.10" in rows[0]  # CPU cost ratio
    keys = {"a": KEYS, "b": KEYS}
    assert verdict(worlds, keys, "Light", "CLIP").startswith(
        "never below -1: yes, wins on every world: yes, mean >= +2: yes"
    )
    worlds["b"] = _world(-0.03)
    # Zero-shot falls 3 points on world b: a loss; mean R@1 still gains 2 there (a win by the OR rule).
    assert "never below -1: no, wins on every world: yes" in verdict(worlds, keys, "Light", "CLIP")
    assert MEAN_R1 in text and "budget a" in text


def test_a_variant_some_worlds_lack_gets_its_world_rows_and_no_mean():
    worlds = {"a": _world(0.05), "b": _world(0.01)}
    worlds["a"]["Later"] = [
        _run("Later", r.seed, r.metrics[ZS]["acc1"], (0.2, 0.2), 110.0, []) for r in worlds["a"]["Light"]
    ]
    text = suite_markdown(worlds, {"a": (ZS, RET), "b": (ZS, RET)}, "CLIP", {}, "test machine")  # a report-only
    rows = [line for line in text.splitlines() if line.startswith("| Later |")]  # suite whose runs are partial
    assert len(rows) == 1 and "Over a, b" in text and "(Later: not on every world, left out)" in text


def test_suite_config_reads_worlds_from_a_recipe_and_refuses_a_missing_baseline():
    config = SuiteConfig(
        worlds={"w": {"world": "w.yaml", "overrides": ["optim.max_steps=3"]}}, variants={"CLIP": []}, baseline="CLIP"
    )
    assert isinstance(config.worlds["w"], SuiteWorld) and config.worlds["w"].overrides == ["optim.max_steps=3"]
    with pytest.raises(ValueError, match="baseline"):
        SuiteConfig(worlds={"w": {"world": "w.yaml"}}, variants={"A": []}, baseline="CLIP")
    with pytest.raises(ValueError, match="world"):
        SuiteWorld()


def test_a_world_set_to_null_is_left_out_and_a_suite_of_none_is_refused():
    config = SuiteConfig(worlds={"a": {"world": "a.yaml"}, "b": None})
    assert list(config.worlds) == ["a"]
    with pytest.raises(ValueError, match="empty"):
        SuiteConfig(worlds={"b": None})


def test_jobs_run_seed_by_seed_over_every_worlds_own_seeds():
    class Job:
        def __init__(self, world: str, seed: int) -> None:
            self.world, self.seed = world, seed

    jobs = {"a": [Job("a", s) for s in (0, 1)], "b": [Job("b", s) for s in (3, 7)], "c": [Job("c", 0)]}
    order = [(job.world, job.seed) for job in seed_major(jobs)]
    assert order == [("a", 0), ("c", 0), ("a", 1), ("b", 3), ("b", 7)]  # b's seeds run though the others lack them


def test_shipped_suite_recipe_parses():
    from pipeline.base.configs import from_dict, load_recipe

    recipe = Path(__file__).parents[2] / "recipes" / "ablation" / "suite.yaml"
    config = from_dict(SuiteConfig, load_recipe(recipe))
    assert len(config.worlds) >= 4 and len(config.seeds) >= 5 and config.baseline in config.variants
