"""The error an export reports, in a module of its own: :mod:`lightclip.export` and the format
writers it calls (:mod:`lightclip.interop.openclip_format`) both raise it."""

from pipeline.base.errors import UserError


class ExportError(UserError, RuntimeError):
    """The export could not be written or did not match PyTorch."""
