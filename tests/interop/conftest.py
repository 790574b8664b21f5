"""open_clip interop tests: skipped where the ``interop`` extra (open_clip_torch[training]) is not installed."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "stream"))  # synthetic shards
pytest.importorskip("open_clip", reason="pip install -e '.[interop]'")
