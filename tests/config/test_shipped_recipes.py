"""Every shipped recipe resolves to the config it held before recipes could inherit (``base:``).

``shipped_recipes.json`` keeps each recipe's resolved mapping as it was written out in full; a
recipe now built from a base must give the same dataclass. After a deliberate change to a recipe,
rewrite the file with ``python tests/config/test_shipped_recipes.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("shipped_recipes.json")
KINDS = ("train", "data", "ablation")


def config_class(name: str) -> type:
    """The dataclass a shipped recipe (``kind/stem``) is loaded into."""
    from lightclip.trainconfig import TrainConfig
    from lightclip_demo.ablate import AblationConfig
    from lightclip_demo.suite import SuiteConfig
    from lightclip_demo.world import WorldConfig
    from pipeline.build import BuildConfig

    kind, stem = name.split("/")
    if kind == "train":
        return TrainConfig
    if kind == "ablation":
        return SuiteConfig if stem.startswith("suite") else AblationConfig
    return WorldConfig if "world" in stem else BuildConfig


def recipe_names() -> list[str]:
    return sorted(f"{kind}/{p.stem}" for kind in KINDS for p in (REPO / "recipes" / kind).glob("*.yaml"))


def resolved(name: str) -> dict:
    from pipeline.base.configs import load_recipe

    return load_recipe(REPO / "recipes" / f"{name}.yaml")


def test_every_shipped_recipe_is_in_the_snapshot():
    assert recipe_names() == sorted(json.loads(SNAPSHOT.read_text()))


@pytest.mark.parametrize("name", recipe_names())
def test_recipe_resolves_to_its_snapshot(name):
    from pipeline.base.configs import from_dict

    cls = config_class(name)
    config, expected = from_dict(cls, resolved(name), name), from_dict(cls, json.loads(SNAPSHOT.read_text())[name])
    assert config == expected
    assert repr(config) == repr(expected)  # mappings in the same order too (the ablation's variants)


def test_bases_resolve_in_the_installed_layout_from_any_folder(tmp_path):
    """Installed, the recipes sit in pipeline/recipes/{data,train}: a base is found beside its
    recipe there, whatever the working directory."""
    import shutil
    import subprocess

    site = tmp_path / "site"
    shutil.copytree(REPO / "pipeline", site / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for kind in ("data", "train"):
        shutil.copytree(REPO / "recipes" / kind, site / "pipeline" / "recipes" / kind)
    code = (
        "import json, pipeline; from pipeline.base.configs import load_recipe; "
        f"assert pipeline.__file__.startswith({str(site)!r}); "
        "print(json.dumps(load_recipe('train/resnet18_clip')))"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == resolved("train/resnet18_clip")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    SNAPSHOT.write_text(json.dumps({name: resolved(name) for name in recipe_names()}, indent=1) + "\n")
    print(f"wrote {SNAPSHOT}")
