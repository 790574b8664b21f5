"""The import graph points one way: ``lightclip_demo`` -> ``lightclip`` -> ``pipeline``.

Two independent checks. The source: every import statement (module level or nested, and
``importlib.import_module`` / ``__import__`` of a literal name) and, against dispatch by string,
any mention of the demo package in the libraries' text. A fresh interpreter: import every module
of a library, then look at ``sys.modules``. The last test runs both checks on a small tree with
one arrow of each kind, so that a checker that sees nothing cannot pass.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = "lightclip_demo"
ABOVE = {"pipeline": ("lightclip", DEMO), "lightclip": (DEMO,)}  # library -> packages it must not import
DYNAMIC = {"import_module", "__import__"}

IMPORT_ALL = r"""
import importlib, json, pkgutil, sys

package = sys.argv[1]
root = importlib.import_module(package)
names = [m.name for m in pkgutil.walk_packages(root.__path__, package + ".") if not m.name.endswith("__main__")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as err:
        failed[name] = repr(err)
print(json.dumps({"file": root.__file__, "modules": names, "failed": failed, "loaded": sorted(sys.modules)}))
"""


def top(module: str) -> str:
    return module.split(".")[0]


def dynamic_import(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in DYNAMIC and node.args and isinstance(node.args[0], ast.Constant):
        return str(node.args[0].value)
    return None


def imported_names(source: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``, at any depth."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and (name := dynamic_import(node)):
            yield node.lineno, name


def sources(root: Path, package: str) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def import_violations(root: Path, package: str) -> list[str]:
    """``file:line imports module`` for every import of a package above ``package``."""
    return [
        f"{path.relative_to(root)}:{line} imports {name}"
        for path in sources(root, package)
        for line, name in imported_names(path.read_text())
        if top(name) in ABOVE[package]
    ]


def text_violations(root: Path, package: str) -> list[str]:
    """``file:line`` of every line of ``package`` that names the demo package."""
    return [
        f"{path.relative_to(root)}:{number}"
        for path in sources(root, package)
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if DEMO in line
    ]


def import_everything(root: Path, package: str) -> dict:
    """Modules, import failures and ``sys.modules`` after importing every module of ``package``
    in a fresh interpreter that finds packages in ``root`` first."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, package],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).is_relative_to(root), report["file"]
    return report


def loaded_above(report: dict, package: str) -> list[str]:
    return [name for name in report["loaded"] if top(name) in ABOVE[package]]


@pytest.mark.parametrize("package", list(ABOVE))
def test_no_import_statement_points_up(package):
    assert sources(REPO, package)
    assert import_violations(REPO, package) == []


@pytest.mark.parametrize("package", list(ABOVE))
def test_libraries_do_not_name_the_demo_package(package):
    assert text_violations(REPO, package) == []


@pytest.mark.parametrize(("package", "expected"), [("pipeline", "pipeline.build"), ("lightclip", "lightclip.training.loop")])
def test_importing_every_module_loads_nothing_above(package, expected):
    report = import_everything(REPO, package)
    assert expected in report["modules"] and report["failed"] == {}
    assert loaded_above(report, package) == []


FAKE_TREE = {
    "pipeline/__init__.py": "",
    "pipeline/fine.py": "import json\nfrom . import eager_up\n",
    "pipeline/eager_up.py": "import lightclip_demo.world as world\n",
    "pipeline/late_up.py": "def f():\n    from lightclip.train import step\n    return step\n",
    "pipeline/by_name.py": "import importlib\n\nimportlib.import_module('lightclip.train')\n",
    "lightclip/__init__.py": "",
    "lightclip/train.py": "step = 1\n",
    "lightclip/cli.py": "VERBS = {'demo': 'lightclip_demo.cli'}\n",
    "lightclip_demo/__init__.py": "",
    "lightclip_demo/world.py": "",
}


def test_both_checks_see_each_kind_of_upward_arrow(tmp_path):
    for name, text in FAKE_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert import_violations(tmp_path, "pipeline") == [
        "pipeline/by_name.py:3 imports lightclip.train",
        "pipeline/eager_up.py:1 imports lightclip_demo.world",
        "pipeline/late_up.py:2 imports lightclip.train",
    ]
    assert import_violations(tmp_path, "lightclip") == []  # a string is not an import statement...
    assert text_violations(tmp_path, "lightclip") == ["lightclip/cli.py:1"]  # ...but the text check sees it
    report = import_everything(tmp_path, "pipeline")
    assert report["failed"] == {}
    # the nested import does not run at import time: only the source check sees that one
    assert loaded_above(report, "pipeline") == [
        "lightclip",
        "lightclip.train",
        "lightclip_demo",
        "lightclip_demo.world",
    ]
