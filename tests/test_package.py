"""The generic import name `pipeline` must resolve to this repository's package."""

from pathlib import Path

import lightclip
import pipeline

REPO = Path(__file__).resolve().parents[1]


def test_pipeline_package_is_this_repository():
    assert Path(pipeline.__file__).resolve().is_relative_to(REPO / "pipeline")
    assert Path(lightclip.__file__).resolve().is_relative_to(REPO / "lightclip")
