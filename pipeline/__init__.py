"""Data pipeline: metadata -> WebDataset shards (``pipeline.build``) and the streaming loader.

The shared base that ``lightclip`` (and any other CLIP project) reuses lives in
``pipeline.base`` (recipes, tokenizer, image transforms, shard layout, user errors) and imports
nothing else of this package; the Dask half (metadata, filters, downloads, the build) sits beside
it. Nothing here imports ``lightclip`` or the demo application built on top of both.

Importing any module of this package makes no network request: albumentations (pulled in by
img2dataset) checks PyPI for a newer version at import time unless this variable is set, so it
is set here, before any submodule can import img2dataset.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
