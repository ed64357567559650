"""Admin's user-facing errors: one clear line naming the problem and the fix, no traceback."""
import sys


class AdminError(Exception):
    """A configuration or input problem the user can fix; printed as one line by the CLIs."""


def _excepthook(exc_type, exc, tb, _previous=sys.excepthook):
    from .checkpoints import TRUST_HINT, refused_global

    if issubclass(exc_type, AdminError):
        sys.stderr.write(f"fairseq-admin: error: {exc}\n")
    elif refused_global(exc):  # fairseq's own torch.load met a type outside the allowlist
        sys.stderr.write(f"fairseq-admin: error: a checkpoint was refused: it holds {refused_global(exc)}, which "
                         f"fairseq checkpoints do not contain and whose loading could run code; {TRUST_HINT}\n")
    else:
        _previous(exc_type, exc, tb)


def install_excepthook() -> None:
    """Make an uncaught AdminError, or a checkpoint refused by the weights-only loader, print one line
    (fairseq's CLIs do not catch exceptions); every other exception keeps Python's usual traceback."""
    if sys.excepthook is not _excepthook:
        sys.excepthook = _excepthook
