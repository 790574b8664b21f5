"""Data pipeline: metadata -> WebDataset shards (``pipeline.build``) and the streaming loader.

Importing any module of this package makes no network request: albumentations (pulled in by
img2dataset) checks PyPI for a newer version at import time unless this variable is set, so it
is set here, before any submodule can import img2dataset.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
