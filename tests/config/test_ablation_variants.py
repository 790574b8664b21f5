"""The ablation variants are written once: in recipes/ablation (the CLIP baseline in common.yaml,
the others in demo.yaml and suite.yaml); the Python defaults read them from there."""

from __future__ import annotations

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


def test_the_suite_shares_the_ablations_baseline_variant():
    demo, suite = shipped("demo", AblationConfig), shipped("suite", SuiteConfig)
    assert suite.baseline == demo.baseline and suite.recipe == demo.recipe
    assert suite.variants[suite.baseline] == demo.variants[demo.baseline]
    assert list(suite.variants)[0] == suite.baseline and len(suite.variants) == 3


def test_each_variant_is_written_once():
    sources = [*ABLATION.glob("*.yaml"), *(REPO / "lightclip_demo").glob("*.py")]
    texts = [path.read_text() for path in sources]
    names = {*shipped("demo", AblationConfig).variants, *shipped("suite", SuiteConfig).variants}
    for name in names:
        defined = (f"{name}: [", f'"{name}": [')  # in a recipe, in Python
        assert sum(text.count(form) for text in texts for form in defined) == 1, name
