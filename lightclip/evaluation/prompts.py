"""Class names and prompt templates shipped as data files under ``lightclip/data``.

``en_classnames.json`` and ``en_zeroshot_classification_templates.json`` are CLIP_benchmark's
(1.6.2, MIT licence): CLIP's curated class names and templates. ``dataset_classnames.json`` holds,
for the sets whose names CLIP_benchmark takes from the dataset itself (CIFAR, STL-10, DTD,
Food-101), the names it derives from the torchvision classes; they are used when a copy of the set
does not carry its own names (an ImageFolder or WebDataset copy). SUN397 names always come from
the dataset's ``ClassName.txt``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

DEFAULT_TEMPLATE_SET = "imagenet1k"  # CLIP_benchmark's fallback for sets without templates


@cache
def _load(file_name: str) -> dict[str, list[str]]:
    return json.loads(resources.files("lightclip").joinpath("data", file_name).read_text("utf-8"))


def curated_classnames(name: str) -> list[str] | None:
    """CLIP's curated class names for ``name`` (these override the dataset's own), or None."""
    names = _load("en_classnames.json").get(name)
    return list(names) if names is not None else None


def fallback_classnames(name: str) -> list[str] | None:
    """Curated names, else the names CLIP_benchmark derives from torchvision, else None."""
    names = curated_classnames(name)
    if names is None:
        names = _load("dataset_classnames.json").get(name)
    return list(names) if names is not None else None


def templates_for(name: str) -> list[str]:
    """Prompt templates for ``name`` (``{c}`` marks the class name); ImageNet's 80 otherwise."""
    table = _load("en_zeroshot_classification_templates.json")
    return list(table.get(name) or table[DEFAULT_TEMPLATE_SET])


def fill_template(template: str, classname: str) -> str:
    """Put ``classname`` into a template written with ``{c}`` (CLIP_benchmark) or ``{}`` (CLIP)."""
    return template.replace("{c}", classname).replace("{}", classname)
