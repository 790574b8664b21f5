"""``python -m pipeline``: see :mod:`pipeline.cli`."""

import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

if __name__ == "__main__":
    from pipeline.cli import main

    sys.exit(main())
