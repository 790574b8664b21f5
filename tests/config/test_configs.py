"""Recipe loading: strict keys, typed coercion, `a.b=c` overrides."""

from dataclasses import dataclass, field

import pytest

from pipeline.base.configs import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_recipe,
    save_resolved,
)


@dataclass
class Inner:
    lr: float = 5e-4
    stages: tuple[int, ...] = (2, 3)


@dataclass
class Outer:
    name: str = "x"
    steps: int = 10
    inner: Inner = field(default_factory=Inner)


def test_unknown_key_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"inner: unknown key\(s\) \['lrr'\].*'lr'"):
        from_dict(Outer, {"inner": {"lrr": 1}})


def test_overrides_are_typed_and_nested():
    data = apply_overrides({"inner": {"lr": 0.1}}, ["inner.lr=1e-3", "steps=20", "inner.stages=[3]", "name=run"])
    config = from_dict(Outer, data)
    assert config == Outer(name="run", steps=20, inner=Inner(lr=1e-3, stages=(3,)))


def test_bad_values_are_rejected_with_their_key():
    with pytest.raises(ConfigError, match="steps: expected int"):
        from_dict(Outer, {"steps": "many"})
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_overrides({}, ["steps"])


def test_resolved_config_round_trips(tmp_path):
    config = Outer(steps=3, inner=Inner(lr=0.25))
    save_resolved(config, tmp_path / "config.yaml")
    assert from_dict(Outer, load_recipe(tmp_path / "config.yaml")) == config
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")


def test_training_config_loads_without_the_evaluation_code():
    """The eval section is typed and checked at load time, yet costs no evaluation import."""
    import subprocess
    import sys

    code = (
        "import sys, lightclip.trainconfig as t, pipeline.base.configs as c; "
        "cfg = c.from_dict(t.TrainConfig, {'eval': {'batch_size': 8}}); "
        "print(cfg.eval.batch_size, 'lightclip.evaluation' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["8", "False"]
    from lightclip.evalconfig import EvalConfig
    from lightclip.evaluation import EvalConfig as Reexported

    assert Reexported is EvalConfig


def test_a_verb_config_is_recipe_then_flags_then_overrides(tmp_path):
    from lightclip.cli.options import load_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: from_recipe\nsteps: 1\ninner: {lr: 0.5}\n")
    config = load_config(Outer, str(recipe), ["steps=3"], {"steps": 2, "inner.lr": 0.25, "name": None})
    assert config == Outer(name="from_recipe", steps=3, inner=Inner(lr=0.25))
    assert load_config(Outer, None, [], {}) == Outer()
    with pytest.raises(ConfigError, match=r"inner: unknown key\(s\) \['lrr'\]"):
        load_config(Outer, None, [], {"inner.lrr": 1})
