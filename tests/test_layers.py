"""The import graph points one way: ``lightclip_demo`` -> ``lightclip`` -> ``pipeline``, and
within ``pipeline`` the shared base ``pipeline.base`` imports nothing else of ``pipeline``.

Two independent checks. The source: every import statement (module level or nested, and
``importlib.import_module`` / ``__import__`` of a literal name) and, against dispatch by string,
any mention of the demo package in the libraries' text. A fresh interpreter: import every module
of a library, then look at ``sys.modules``. The last tests run both checks on a small tree with
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
ABOVE = {  # layer -> the packages it must not import (its own modules and parent packages excepted)
    "pipeline": ("lightclip", DEMO),
    "lightclip": (DEMO,),
    "pipeline.base": ("pipeline", "lightclip", DEMO),
}
LIBRARIES = ("pipeline", "lightclip")  # the top-level packages that must not name the demo
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


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def is_above(module: str, layer: str) -> bool:
    """Whether ``layer`` must not import ``module`` (importing ``layer`` loads its parent
    packages, ``pipeline/__init__.py`` for ``pipeline.base``: those are not above it)."""
    if within(module, layer) or within(layer, module):
        return False
    return any(within(module, package) for package in ABOVE[layer])


def dynamic_import(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in DYNAMIC and node.args and isinstance(node.args[0], ast.Constant):
        return str(node.args[0].value)
    return None


def absolute_module(node: ast.ImportFrom, package: str) -> str:
    """The module ``from ... import`` reads, a relative one resolved against ``package`` (the
    package of the importing file)."""
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*parts, node.module] if node.module else parts)


def imported_names(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in ``source``, at any depth; ``from a import b`` gives
    ``a`` and ``a.b`` (``b`` may be a module)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(node, package)
            yield node.lineno, module
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and (name := dynamic_import(node)):
            yield node.lineno, name


def sources(root: Path, package: str) -> list[Path]:
    return sorted((root / package.replace(".", "/")).rglob("*.py"))


def file_package(root: Path, path: Path) -> str:
    """The package a source file belongs to (``a/b/c.py`` and ``a/b/__init__.py``: ``a.b``)."""
    return ".".join(path.relative_to(root).parts[:-1])


def import_violations(root: Path, package: str) -> list[str]:
    """``file:line imports module`` for every line of ``package`` that imports a module above it."""
    found: dict[tuple[Path, int], str] = {}
    for path in sources(root, package):
        for line, name in imported_names(path.read_text(), file_package(root, path)):
            if is_above(name, package):
                found.setdefault((path, line), name)
    return [f"{path.relative_to(root)}:{line} imports {name}" for (path, line), name in sorted(found.items())]


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
    return [name for name in report["loaded"] if is_above(name, package)]


@pytest.mark.parametrize("package", list(ABOVE))
def test_no_import_statement_points_up(package):
    assert sources(REPO, package)
    assert import_violations(REPO, package) == []


@pytest.mark.parametrize("package", LIBRARIES)
def test_libraries_do_not_name_the_demo_package(package):
    assert text_violations(REPO, package) == []


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        ("pipeline", "pipeline.build"),
        ("lightclip", "lightclip.training.loop"),
        ("pipeline.base", "pipeline.base.shards"),
    ],
)
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


FAKE_BASE = {  # the shared base of the fake tree: allowed imports in fine.py, one arrow of each kind
    "pipeline/base/__init__.py": "",
    "pipeline/base/sibling.py": "",
    "pipeline/base/fine.py": "import pipeline\nfrom pipeline.base import sibling\nfrom . import sibling as again\n",
    "pipeline/base/eager_up.py": "from pipeline import fine\n",
    "pipeline/base/relative_up.py": "from ..late_up import f\n",
    "pipeline/base/late_up.py": "def g():\n    import pipeline.by_name\n",
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_both_checks_see_each_kind_of_upward_arrow(tmp_path):
    write_tree(tmp_path, FAKE_TREE)
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


def test_both_checks_see_the_base_import_the_rest_of_its_package(tmp_path):
    write_tree(tmp_path, {**FAKE_TREE, **FAKE_BASE})
    assert import_violations(tmp_path, "pipeline.base") == [
        "pipeline/base/eager_up.py:1 imports pipeline.fine",
        "pipeline/base/late_up.py:2 imports pipeline.by_name",
        "pipeline/base/relative_up.py:1 imports pipeline.late_up",
    ]
    report = import_everything(tmp_path, "pipeline.base")
    assert report["failed"] == {}
    # fine.py's imports load nothing above; the nested import is seen by the source check only
    assert loaded_above(report, "pipeline.base") == [
        "lightclip_demo",
        "lightclip_demo.world",
        "pipeline.eager_up",
        "pipeline.fine",
        "pipeline.late_up",
    ]
