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


SUITES = ("suite", "suite_sweep", "suite_candidates", "suite_levers")


def test_the_suites_share_the_ablations_baseline_variant():
    demo = shipped("demo", AblationConfig)
    for name in SUITES:
        suite = shipped(name, SuiteConfig)
        assert suite.baseline == demo.baseline and suite.recipe == demo.recipe
        assert suite.variants[suite.baseline] == demo.variants[demo.baseline]
        assert list(suite.variants)[:2] == [suite.baseline, "LightCLIP"], name


def test_the_sweep_the_candidates_and_the_levers_start_from_the_suite():
    suite = shipped("suite", SuiteConfig)
    seeds = {"suite_sweep": [0], "suite_candidates": suite.seeds, "suite_levers": [0]}
    for name in SUITES[1:]:
        other = shipped(name, SuiteConfig)
        assert other.worlds == suite.worlds and other.overrides == suite.overrides and other.out_dir == suite.out_dir
        assert other.seeds == seeds[name] and len(suite.seeds) >= 5
    candidates, levers = shipped("suite_candidates", SuiteConfig), shipped("suite_levers", SuiteConfig)
    assert len(candidates.variants) == 5 and set(candidates.variants) < set(levers.variants)


def test_each_variant_is_written_once():
    sources = [*ABLATION.glob("*.yaml"), *(REPO / "lightclip_demo").glob("*.py")]
    texts = [path.read_text() for path in sources]
    names = {*shipped("demo", AblationConfig).variants, *(v for n in SUITES for v in shipped(n, SuiteConfig).variants)}
    for name in names:
        defined = re.compile(rf"^\s*(?:{re.escape(name)}|\"{re.escape(name)}\"): \[", re.MULTILINE)  # recipe, Python
        assert sum(len(defined.findall(text)) for text in texts) == 1, name
