"""Admin's user-facing errors: one clear line naming the problem and the fix, no traceback."""
import errno
import os
import sys


class AdminError(Exception):
    """A configuration or input problem the user can fix; printed as one line by the CLIs."""


#: errno values of a full, read-only or size-limited disk: one line instead of a traceback (EACCES has its own)
_DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def _file_of(exc) -> str:
    """' PATH' of an OSError that names its file, else ' a file'."""
    return f" {exc.filename}" if getattr(exc, "filename", None) else " a file"


def _dangling_link(path) -> bool:
    return isinstance(path, str) and os.path.islink(path) and not os.path.exists(path)


def _excepthook(exc_type, exc, tb, _previous=sys.excepthook):
    from .checkpoints import TRUST_HINT, refused_global

    if issubclass(exc_type, AdminError):
        sys.stderr.write(f"fairseq-admin: error: {exc}\n")
    elif refused_global(exc):  # fairseq's own torch.load met a type outside the allowlist
        sys.stderr.write(f"fairseq-admin: error: a checkpoint was refused: it holds {refused_global(exc)}, which "
                         f"fairseq checkpoints do not contain and whose loading could run code; {TRUST_HINT}\n")
    elif issubclass(exc_type, OSError) and getattr(exc, "errno", None) == errno.EACCES:
        sys.stderr.write(f"fairseq-admin: error: no permission for{_file_of(exc)}: {exc.strerror or exc}; make it readable "
                         "(and its folder writable) and rerun the same command: what was finished is kept\n")
    elif issubclass(exc_type, OSError) and getattr(exc, "errno", None) in _DISK_ERRORS:
        sys.stderr.write(f"fairseq-admin: error: could not write{_file_of(exc)}: {exc.strerror or exc}; free space (or make "
                         "the folder writable) and rerun the same command: what was finished is kept, files are "
                         "written under a temporary name first\n")
    elif issubclass(exc_type, FileExistsError) and _dangling_link(getattr(exc, "filename", None)):
        link = exc.filename
        sys.stderr.write(f"fairseq-admin: error: {link} is a symbolic link to {os.readlink(link)}, which does not "
                         "exist: create that folder, or remove the link (or give another --save-dir)\n")
    elif exc_type is Exception and "is invalid" in str(exc) and "--skip-invalid-size-inputs-valid-test" in str(exc):
        # fairseq's own message for a valid/test sentence longer than the model's positions: already the fix
        sys.stderr.write(f"fairseq-admin: error: {exc} (or shorten that sentence in the raw data)\n")
    elif issubclass(exc_type, RuntimeError) and "PytorchStreamReader failed" in str(exc):
        sys.stderr.write("fairseq-admin: error: a checkpoint is truncated or corrupted (torch cannot read it; "
                         "the path is in the last 'loading'/'Preparing to load' log line above): if it is the "
                         "checkpoint_last.pt of an interrupted run, delete it or resume from another one with "
                         "--restore-file checkpoint_best.pt (or a checkpointN.pt)\n")
    else:
        _previous(exc_type, exc, tb)


def install_excepthook() -> None:
    """Make an uncaught AdminError, a checkpoint refused by the weights-only loader, an unreadable
    (truncated) checkpoint, a full / read-only disk, or a dangling symbolic link as a folder print one line (fairseq's CLIs do not catch exceptions); every other exception
    keeps Python's usual traceback."""
    if sys.excepthook is not _excepthook:
        sys.excepthook = _excepthook


#: fairseq versions the plugin runs on: upstream 0.12.2 (Python <= 3.10) and later 0.12 builds such as
#: fairseq-fixed 0.12.3.1; the model and task hooks it uses appeared in 0.12
SUPPORTED_FAIRSEQ = "0.12.2 or a later 0.12.x (e.g. fairseq-fixed 0.12.3.1)"


def check_fairseq_version(version: str = None) -> None:
    """Raise one clear AdminError if fairseq is missing or not a supported version."""
    if version is None:
        try:
            import fairseq
        except ImportError:
            raise AdminError(f"fairseq is not installed: fairseq-admin needs fairseq {SUPPORTED_FAIRSEQ}; "
                             "pip install --no-build-isolation fairseq-fixed==0.12.3.1 (Python >= 3.11) or "
                             "fairseq==0.12.2 (Python <= 3.10)")
        version = getattr(fairseq, "__version__", "unknown")
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    if len(parts) < 3 or parts[0] != 0 or parts[1] != 12 or parts[2] < 2:
        raise AdminError(f"fairseq {version} is not supported: fairseq-admin runs on fairseq {SUPPORTED_FAIRSEQ}")
