"""open_clip interop tests: skipped where the ``interop`` extra (open_clip_torch[training]) is not installed."""

import sys
from pathlib import Path

import pytest

for folder in ("stream", "export", "eval"):  # synthetic shards, tiny models, eval sets
    sys.path.insert(0, str(Path(__file__).parent.parent / folder))
pytest.importorskip("open_clip", reason="pip install -e '.[interop]'")
