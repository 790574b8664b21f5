"""open_clip interop tests (each module skips itself where the ``interop`` extra is not installed)."""

import sys
from pathlib import Path

for folder in ("stream", "export", "eval"):  # synthetic shards, tiny models, eval sets
    sys.path.insert(0, str(Path(__file__).parent.parent / folder))
