"""Errors that are the user's to fix: a command line prints them as one line and exits 2.

Each entry names a class by module so that nothing is imported to check it: an exception can
only be an instance of a class whose module is already loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_USER_ERROR = 2
USER_ERRORS = (
    ("pipeline.base.configs", "ConfigError"),
    ("pipeline.metadata", "MetadataError"),
    ("pipeline.build", "BuildError"),
    ("pipeline.wordnet_data", "WordNetMissingError"),
    ("pipeline.stream", "DataLossError"),
    ("pipeline.base.shards", "ShardSpecError"),
    ("pipeline.base.tarsafe", "TarRefused"),
    ("lightclip.checkpoint", "CheckpointError"),
    ("lightclip.inference", "LoadError"),
    ("lightclip.export", "ExportError"),
    ("lightclip.evaluation.sources", "UnknownDataset"),
    ("lightclip.evaluation.errors", "DatasetUnavailable"),
)
OS_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def is_user_error(err: BaseException) -> bool:
    if isinstance(err, OS_ERRORS):
        return True
    for module, name in USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(err, cls):
            return True
    return False


def one_line(err: BaseException) -> str:
    """The error's message on one line (a file error names its file)."""
    if isinstance(err, OSError) and err.filename and str(err.filename) not in str(err.strerror or ""):
        text = f"{err.strerror or err}: {err.filename}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def run_guarded(prog: str, run: Callable[[], int | None], also: tuple[type[Exception], ...] = ()) -> int:
    """``run()``'s exit code; a user error (or an instance of ``also``, the command's own user
    errors) becomes ``prog: message`` on stderr and exit code 2."""
    try:
        return int(run() or 0)
    except Exception as err:
        if not (is_user_error(err) or isinstance(err, also)):
            raise
        print(f"{prog}: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
