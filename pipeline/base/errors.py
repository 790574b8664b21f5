"""Errors that are the user's to fix: a command line prints them as one line and exits 2.

Every such error subclasses :class:`UserError` (a class that was a ``ValueError`` or a
``RuntimeError`` stays one too); a few file errors of the operating system count as the
user's as well. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_USER_ERROR = 2
OS_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


class UserError(Exception):
    """A recipe, input file, checkpoint or command-line value the user has to change."""


def is_user_error(err: BaseException) -> bool:
    return isinstance(err, (UserError, *OS_ERRORS))


def one_line(err: BaseException) -> str:
    """The error's message on one line (a file error names its file)."""
    if isinstance(err, OSError) and err.filename and str(err.filename) not in str(err.strerror or ""):
        text = f"{err.strerror or err}: {err.filename}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def run_guarded(prog: str, run: Callable[[], int | None]) -> int:
    """``run()``'s exit code; a user error becomes ``prog: message`` on stderr and exit code 2."""
    try:
        return int(run() or 0)
    except Exception as err:
        if not is_user_error(err):
            raise
        print(f"{prog}: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
