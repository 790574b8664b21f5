"""``python -m pipeline``: see :mod:`pipeline.cli`."""

import sys

if __name__ == "__main__":
    from pipeline.cli import main

    sys.exit(main())
