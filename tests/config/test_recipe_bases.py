"""Recipe inheritance: ``base: other.yaml`` merged under the recipe, then the overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from pipeline.base.configs import ConfigError, from_dict, load_recipe, merge, save_resolved


@dataclass
class Optim:
    lr: float = 1e-3
    stages: list[int] = field(default_factory=lambda: [2, 3])
    schedule: dict[str, float] = field(default_factory=dict)


@dataclass
class Recipe:
    name: str = ""
    steps: int = 1
    optim: Optim = field(default_factory=Optim)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_mappings_merge_key_by_key_and_lists_and_scalars_replace():
    base = {"a": 1, "m": {"x": 1, "deep": {"p": 1, "q": 2}, "l": [1, 2, 3]}, "s": {"k": 1}}
    child = {"m": {"deep": {"q": 5}, "l": [9]}, "s": None, "b": 2}
    assert merge(base, child) == {"a": 1, "m": {"x": 1, "deep": {"p": 1, "q": 5}, "l": [9]}, "s": None, "b": 2}
    assert base["m"]["deep"] == {"p": 1, "q": 2}  # neither input changes


def test_a_child_recipe_is_merged_over_its_base_then_overridden(tmp_path):
    write(tmp_path, "base.yaml", "name: base\nsteps: 5\noptim: {lr: 0.5, stages: [1, 2, 3], schedule: {warm: 0.1}}\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\nname: child\noptim: {stages: [4], schedule: {cool: 0.2}}\n")
    data = load_recipe(child, ["steps=7"])
    assert "base" not in data
    assert from_dict(Recipe, data) == Recipe(
        name="child", steps=7, optim=Optim(lr=0.5, stages=[4], schedule={"warm": 0.1, "cool": 0.2})
    )


def test_a_two_level_chain_resolves_from_the_bottom(tmp_path):
    write(tmp_path, "a.yaml", "name: a\nsteps: 1\noptim: {lr: 0.1}\n")
    write(tmp_path, "b.yaml", "base: a.yaml\nsteps: 2\n")
    c = write(tmp_path, "sub/c.yaml", "base: ../b.yaml\noptim: {stages: [3]}\n")
    assert from_dict(Recipe, load_recipe(c)) == Recipe(name="a", steps=2, optim=Optim(lr=0.1, stages=[3]))


def test_a_base_is_found_beside_the_recipe_not_in_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path / "elsewhere", "common.yaml", "name: beside\n")
    write(tmp_path / "cwd", "common.yaml", "name: cwd\n")
    child = write(tmp_path / "elsewhere", "child.yaml", "base: common.yaml\n")
    monkeypatch.chdir(tmp_path / "cwd")
    assert load_recipe(child)["name"] == "beside"


def test_a_base_outside_the_shipped_folder_and_a_shipped_base(tmp_path):
    own = write(tmp_path, "own/tiny_fast.yaml", "base: train/tiny\noptim: {max_steps: 3}\n")
    shipped = load_recipe("recipes/train/tiny.yaml")
    data = load_recipe(own)
    assert data["optim"] == {**shipped["optim"], "max_steps": 3}
    assert {k: v for k, v in data.items() if k != "optim"} == {k: v for k, v in shipped.items() if k != "optim"}
    relative = write(tmp_path, "mine/child.yaml", "base: ../own/tiny_fast.yaml\nrun: {keep: 9}\n")
    assert load_recipe(relative)["optim"]["max_steps"] == 3


def test_a_cycle_is_refused_in_one_line_naming_the_chain(tmp_path):
    a = write(tmp_path, "a.yaml", "base: b.yaml\n")
    write(tmp_path, "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="a cycle of bases") as caught:
        load_recipe(a)
    message = str(caught.value)
    assert "\n" not in message and message.count("a.yaml") == 3 and "b.yaml" in message
    itself = write(tmp_path, "self.yaml", "base: self.yaml\n")
    with pytest.raises(ConfigError, match="a cycle of bases"):
        load_recipe(itself)


def test_a_chain_too_deep_is_refused(tmp_path):
    for level in range(12):
        write(tmp_path, f"r{level}.yaml", f"base: r{level + 1}.yaml\n")
    write(tmp_path, "r12.yaml", "name: bottom\n")
    with pytest.raises(ConfigError, match="a chain of more than 8 recipes"):
        load_recipe(tmp_path / "r0.yaml")


def test_a_missing_base_names_the_recipe_and_the_base(tmp_path):
    child = write(tmp_path, "child.yaml", "base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: base nowhere\.yaml is neither in .* shipped recipes: "):
        load_recipe(child)
    ambiguous = write(tmp_path, "amb.yaml", "base: demo\n")
    with pytest.raises(ConfigError, match=r"amb\.yaml: base demo is ambiguous: write recipes/data/demo.yaml or"):
        load_recipe(ambiguous)
    not_a_name = write(tmp_path, "bad.yaml", "base: [a.yaml]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: base must name a recipe file"):
        load_recipe(not_a_name)


def test_a_broken_base_is_named(tmp_path):
    write(tmp_path, "base.yaml", "name: [unclosed\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\n")
    with pytest.raises(ConfigError, match=r"recipe .*base\.yaml is not valid YAML"):
        load_recipe(child)


def test_the_resolved_config_holds_the_merged_recipe_without_base(tmp_path):
    write(tmp_path, "base.yaml", "name: base\noptim: {lr: 0.5}\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\nsteps: 3\n")
    save_resolved(from_dict(Recipe, load_recipe(child)), tmp_path / "run" / "config.yaml")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert "base" not in saved
    assert saved == {"name": "base", "steps": 3, "optim": {"lr": 0.5, "stages": [2, 3], "schedule": {}}}
