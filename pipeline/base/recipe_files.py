"""Where the shipped recipes live: ``recipes/`` of a checkout, or the copy installed with the
package (``pipeline/recipes`` in site-packages), so recipe names work from any folder."""

from __future__ import annotations

from pathlib import Path

from pipeline.base.configs import ConfigError

KINDS = ("data", "train")
SUFFIX = ".yaml"


class RecipeNotFoundError(ConfigError):
    """A recipe path that exists neither as given nor among the shipped recipes."""


def recipes_root() -> Path:
    """The folder holding ``data/`` and ``train/``: the installed copy, else the checkout's."""
    package = Path(__file__).resolve().parents[1]  # pipeline/
    installed = package / "recipes"
    return installed if (installed / "train").is_dir() else package.parent / "recipes"


def shipped(kind: str) -> list[str]:
    """Names of the shipped recipes of ``kind`` (``data`` or ``train``)."""
    return sorted(p.stem for p in (recipes_root() / kind).glob(f"*{SUFFIX}"))


def _candidates(path: Path) -> list[Path]:
    parts = path.with_suffix(SUFFIX).parts if path.suffix != SUFFIX else path.parts
    if parts and parts[0] == "recipes":
        parts = parts[1:]
    root = recipes_root()
    if len(parts) == 1:  # a bare name: look in every kind
        return [root / kind / parts[0] for kind in KINDS if (root / kind / parts[0]).is_file()]
    candidate = root.joinpath(*parts)
    return [candidate] if candidate.is_file() else []


def shipped_names() -> str:
    """Every shipped recipe as ``kind/name``, comma-separated (for error messages)."""
    return ", ".join(f"{kind}/{name}" for kind in KINDS for name in shipped(kind))


def _one_shipped(text: str | Path, where: str, missing: str = "does not exist; shipped recipes:") -> Path:
    """The one shipped recipe ``text`` names; else an error that starts with ``where`` and, when
    none matches, goes on with ``missing`` and the shipped names."""
    found = _candidates(Path(text))
    if len(found) == 1:
        return found[0]
    if found:
        spelled = " or ".join(f"recipes/{p.parent.name}/{p.name}" for p in found)
        raise RecipeNotFoundError(f"{where} is ambiguous: write {spelled}")
    raise RecipeNotFoundError(f"{where} {missing} {shipped_names()}")


def find_recipe(text: str | Path) -> Path:
    """``text`` when that file exists; else the shipped recipe it names, spelled as in the
    repository (``recipes/train/swin_nano.yaml``), by kind (``train/swin_nano``) or bare
    (``swin_nano``, when only one kind has it)."""
    path = Path(text)
    if path.is_file() or path.is_absolute():
        return path
    return _one_shipped(path, f"recipe {text}")


def find_base(recipe: Path, base: str) -> Path:
    """The recipe that ``base: NAME`` in ``recipe`` names: the file NAME relative to the folder
    of ``recipe`` (not to the working directory), else the shipped recipe NAME."""
    beside = recipe.parent / base
    if beside.is_file():
        return beside
    if Path(base).is_absolute():
        raise RecipeNotFoundError(f"recipe {recipe}: base {base} does not exist")
    missing = f"is neither in {recipe.resolve().parent} nor one of the shipped recipes:"
    return _one_shipped(base, f"recipe {recipe}: base {base}", missing)
