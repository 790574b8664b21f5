"""Dataset names to loaders.

A name is one of the 11 classification sets (CLIP_benchmark names), ``flickr30k`` or
``mscoco_captions``, or a prefixed path: ``imagefolder:PATH``, ``karpathy:PATH`` (JSON file or its
directory) or ``wds:PATH``; ``wds/<name>`` reads ``ROOT/wds_<name>`` (CLIP_benchmark's name for
its WebDataset copies) and uses the shipped class names and templates of ``<name>``. Relative
paths are tried as given, then under ROOT.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lightclip.evaluation.classification_data import (
    ALIASES,
    SETS,
    ClassificationSet,
    open_image_folder,
    open_named,
)
from lightclip.evaluation.retrieval_data import (
    GENERIC_KARPATHY,
    RETRIEVAL_ALIASES,
    RETRIEVAL_SETS,
    RetrievalSet,
    open_karpathy,
    open_named_retrieval,
    open_wds_pairs,
)
from lightclip.evaluation.wds_data import dataset_type, open_wds_classification
from pipeline.base.errors import UserError

PREFIXES = ("imagefolder:", "karpathy:", "wds:", "wds/")


class UnknownDataset(UserError, ValueError):
    """A dataset name that is neither a known set nor a prefixed path."""


def known_names() -> list[str]:
    return [*SETS, *RETRIEVAL_SETS]


def check_names(names: list[str]) -> None:
    """:func:`check_name` of every name, before anything is loaded."""
    for name in names:
        check_name(name)


def check_name(name: str) -> None:
    """Raise :class:`UnknownDataset` for a name no loader accepts."""
    canonical = ALIASES.get(name, RETRIEVAL_ALIASES.get(name, name))
    if canonical in SETS or canonical in RETRIEVAL_SETS or name.startswith(PREFIXES):
        return
    raise UnknownDataset(
        f"unknown dataset {name!r}: use one of {', '.join(known_names())}, "
        "or imagefolder:PATH, karpathy:PATH, wds:PATH, wds/<name>"
    )


def _path(text: str, root: str | Path) -> Path:
    path = Path(text).expanduser()
    if path.exists() or path.is_absolute():
        return path
    return Path(root) / path


def open_dataset(
    name: str, root: str | Path, transform: Callable, download: bool = False
) -> ClassificationSet | RetrievalSet:
    """The dataset called ``name`` (see the module docstring), ready to iterate."""
    check_name(name)
    canonical = RETRIEVAL_ALIASES.get(name, name)
    if canonical in RETRIEVAL_SETS:
        return open_named_retrieval(canonical, root, transform)
    if name.startswith("imagefolder:"):
        return open_image_folder(_path(name.split(":", 1)[1], root), transform)
    if name.startswith("karpathy:"):
        return open_karpathy(name, _path(name.split(":", 1)[1], root), GENERIC_KARPATHY, transform)
    if name.startswith(("wds:", "wds/")):
        if name.startswith("wds/"):
            short = name.split("/", 1)[1]
            directory, shipped = Path(root) / f"wds_{short.replace('/', '-')}", short
        else:
            directory, shipped = _path(name.split(":", 1)[1], root), None
        if directory.is_dir() and dataset_type(directory) == "retrieval":
            return open_wds_pairs(name, directory, transform)
        found = open_wds_classification(directory, transform, shipped)
        found.name = name
        return found
    return open_named(name, root, transform, download)
