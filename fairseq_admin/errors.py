"""Admin's user-facing errors: one clear line naming the problem and the fix, no traceback."""
import sys


class AdminError(Exception):
    """A configuration or input problem the user can fix; printed as one line by the CLIs."""


def _excepthook(exc_type, exc, tb, _previous=sys.excepthook):
    if issubclass(exc_type, AdminError):
        sys.stderr.write(f"fairseq-admin: error: {exc}\n")
    else:
        _previous(exc_type, exc, tb)


def install_excepthook() -> None:
    """Make an uncaught AdminError print one line (fairseq's CLIs do not catch exceptions)."""
    if sys.excepthook is not _excepthook:
        sys.excepthook = _excepthook
