"""The ablation variants are written once: in recipes/ablation (the CLIP baseline in common.yaml,
the others in demo.yaml and suite.yaml); the Python defaults read them from there."""

from __future__ import annotations

import re
from pathlib import Path

from lightclip_demo.ablate import AblationConfig, default_variants
from lightclip_demo.suite import SuiteConfig
from pipeline.base.configs import from_dict, load_recipe

REPO = Path(__file__).resolve().parents[2]
ABLATION = REPO / "recipes" / "ablation"


def shipped(name: str, cls: type) -> object:
    return from_dict(cls, load_recipe(ABLATION / f"{name}.yaml"))


def test_the_defaults_are_the_demo_ablations_variants_in_order():
    demo = shipped("demo", AblationConfig)
    assert list(default_variants().items()) == list(demo.variants.items())
    assert list(AblationConfig().variants.items()) == list(demo.variants.items())
    assert SuiteConfig(worlds={"w": {"world": "w.yaml"}}).variants == demo.variants
    assert next(iter(demo.variants)) == demo.baseline == "CLIP (one-hot)"


SUITES = ("suite", "suite_candidates", "suite_sweep", "suite_levers")


def test_the_suites_share_the_ablations_baseline_variant():
    demo = shipped("demo", AblationConfig)
    for name in SUITES:
        suite = shipped(name, SuiteConfig)
        assert suite.baseline == demo.baseline and suite.recipe == demo.recipe
        assert suite.variants[suite.baseline] == demo.variants[demo.baseline]
        assert list(suite.variants)[0] == suite.baseline, name
    assert list(shipped("suite", SuiteConfig).variants)[:2] == [demo.baseline, "LightCLIP"]  # the recipe's own


def test_the_suites_share_worlds_and_budget_and_the_screens_pin_the_objective_they_started_from():
    suite = shipped("suite", SuiteConfig)
    seeds = {"suite_candidates": suite.seeds, "suite_sweep": [0], "suite_levers": [0]}
    for name in SUITES[1:]:
        other = shipped(name, SuiteConfig)
        assert other.worlds == suite.worlds and other.out_dir == suite.out_dir and other.seeds == seeds[name]
        assert other.overrides[: len(suite.overrides)] == suite.overrides and len(suite.seeds) >= 5
    candidates = shipped("suite_candidates", SuiteConfig)
    pinned = shipped("suite_levers", SuiteConfig).overrides[len(suite.overrides) :]
    assert pinned == candidates.variants["LightCLIP, paper weights"]  # the levers change the paper's weights
    assert set(suite.variants) < set(candidates.variants)
    assert set(shipped("suite_sweep", SuiteConfig).variants) < set(shipped("suite_levers", SuiteConfig).variants)


def test_each_variant_is_written_once():
    sources = [*ABLATION.glob("*.yaml"), *(REPO / "lightclip_demo").glob("*.py")]
    texts = [path.read_text() for path in sources]
    names = {*shipped("demo", AblationConfig).variants, *(v for n in SUITES for v in shipped(n, SuiteConfig).variants)}
    for name in names:
        defined = re.compile(rf"^\s*(?:{re.escape(name)}|\"{re.escape(name)}\"): \[", re.MULTILINE)  # recipe, Python
        assert sum(len(defined.findall(text)) for text in texts) == 1, name


def test_the_long_suite_is_the_suite_at_800_steps_without_the_world_it_leaves_out():
    suite, long = shipped("suite", SuiteConfig), shipped("suite_long", SuiteConfig)
    assert long.variants == suite.variants and long.seeds == suite.seeds and long.recipe == suite.recipe
    assert set(long.worlds) == set(suite.worlds) - {"claims"}
    for name, world in long.worlds.items():
        assert world.overrides == suite.worlds[name].overrides and "800 steps" in world.budget
    assert "optim.max_steps=800" in long.overrides and long.out_dir != suite.out_dir and long.probe
