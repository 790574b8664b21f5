"""Inside ``lightclip``: the towers (``models``) and the loss functions (``losses``) know neither
each other nor the training task (``task``), which is the one place that puts them together."""

import ast
from pathlib import Path

import pytest

LIGHTCLIP = Path(__file__).resolve().parents[2] / "lightclip"
FORBIDDEN = {
    "models": ("lightclip.losses", "lightclip.task", "lightclip.training"),
    "losses": ("lightclip.models", "lightclip.task", "lightclip.training"),
    "task": ("lightclip.training",),
}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (``lightclip`` has no relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package):
    files = sorted((LIGHTCLIP / package).glob("*.py"))
    assert files
    wrong = {
        f"{path.name}: {module}"
        for path in files
        for module in imports(path)
        if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN[package])
    }
    assert not wrong


def test_no_import_inside_a_function_of_the_task_models_or_losses():
    """Imports sit at module level (none dodges a cycle); ``TYPE_CHECKING`` blocks are not needed either."""
    nested = [
        f"{path.relative_to(LIGHTCLIP)}:{node.lineno}"
        for package in FORBIDDEN
        for path in sorted((LIGHTCLIP / package).glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.If))
        for inner in ast.walk(node)
        if isinstance(inner, (ast.Import, ast.ImportFrom))
    ]
    assert not nested
