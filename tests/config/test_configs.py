"""Recipe loading: strict keys, typed coercion, `a.b=c` overrides."""

from dataclasses import dataclass, field

import pytest

from pipeline.configs import ConfigError, apply_overrides, from_dict, load_recipe, save_resolved


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
