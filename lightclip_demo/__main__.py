"""``python -m lightclip_demo``: see :mod:`lightclip_demo.cli`."""

import sys

if __name__ == "__main__":
    from lightclip_demo.cli import main

    sys.exit(main())
