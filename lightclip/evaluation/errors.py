"""The error every loader raises when a dataset is not where it should be."""

from __future__ import annotations

from pathlib import Path

from pipeline.base.errors import UserError


class DatasetUnavailable(UserError):
    """A dataset is missing or incomplete: the message names the expected layout and where to
    get the data. ``evaluate_model`` records it for that dataset and goes on with the others."""

    def __init__(self, name: str, where: str | Path, layout: str, obtain: str, detail: str = ""):
        self.name = name
        self.where = str(where)
        text = f"{name}: {detail or 'not found'} at {where}.\nExpected layout:\n{layout.rstrip()}\n"
        text += f"How to get it: {obtain}"
        super().__init__(text)
