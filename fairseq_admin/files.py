"""Files: atomic writes (a reader, or an interrupted run, sees the old file or the whole new one), streamed
line reading, and steps whose outputs are stamped with their inputs and settings."""
import glob
import hashlib
import json
import os
import tempfile
import time
from typing import Callable, Iterable, Iterator, Sequence


#: fault injection (tests/test_faults.py): when this environment variable names a file, its atomic write
#: waits before the rename, so that a test can SIGKILL the step with the written temporary in place
PAUSE_BEFORE_RENAME = "FAIRSEQ_ADMIN_TEST_PAUSE_BEFORE_RENAME"


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        if os.environ.get(PAUSE_BEFORE_RENAME) == os.path.basename(path):
            time.sleep(120)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(path: str) -> None:
    """Remove the hidden temporaries (.NAME.*.tmp) that an interrupted atomic write of ``path`` left.
    Each file has one writer (rank 0, or the single process of a step), so none is in use now."""
    folder, name = os.path.split(os.path.abspath(path))
    for leftover in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")):
        try:
            os.unlink(leftover)
        except FileNotFoundError:
            pass


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def atomic_write_lines(path: str, lines: Iterable[str]) -> None:
    """Write one line per item (streamed, so large corpora need not fit in memory), atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line.rstrip("\n") + "\n")
    atomic_write(path, write)


def read_lines(path: str) -> Iterator[str]:
    """The lines of a UTF-8 text file without their newline, streamed. Only '\\n' ends a line (unlike
    str.splitlines, which also splits on \\x0b, \\x0c, \\x85, U+2028, U+2029 found in crawled corpora);
    a '\\r' before it is dropped, and so is a UTF-8 byte-order mark at the start of the file. Bytes that are
    not UTF-8 give one error naming the file and line."""
    with open(path, "rb") as f:  # binary lines end at b"\n" only
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                from .errors import AdminError
                raise AdminError(f"{path}: line {number} is not UTF-8 ({e.reason} at byte {e.start}): convert "
                                 "the file to UTF-8 (e.g. iconv -f latin1 -t utf-8) or remove the line")
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]  # a UTF-8 byte-order mark encodes the file, it is no text of the first line
            yield line[:-1].rstrip("\r") if line.endswith("\n") else line


def file_sha256(path: str) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class StampedStep:
    """A step whose outputs are reused only if they were made from the same inputs and settings.

        with StampedStep([out], [inp], {"merges": 10000}) as step:
            if step.needed:
                make(out)

    The stamp (a hash of the settings and of every input's bytes, and each output's hash as the step
    wrote it) is written beside the first output after the step succeeded, and removed before it starts,
    so an interrupted step is redone; an output that another step (or anything else) has rewritten since
    no longer matches its stamp, and the step is redone.
    """

    def __init__(self, outputs: Sequence[str], inputs: Sequence[str], settings: dict):
        self.outputs = list(outputs)
        first = os.path.abspath(self.outputs[0])
        self.stamp = os.path.join(os.path.dirname(first), f".{os.path.basename(first)}.stamp")
        h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
        for path in inputs:
            h.update(file_sha256(path).encode())
        self.key = h.hexdigest()
        self.needed = not (all(os.path.exists(p) for p in self.outputs) and self._stamped() == self._expected())

    def _expected(self) -> str:
        return " ".join([self.key] + [f"{os.path.basename(p)}:{file_sha256(p)}" for p in self.outputs])

    def _stamped(self) -> str:
        try:
            with open(self.stamp, encoding="utf-8") as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def __enter__(self) -> "StampedStep":
        if self.needed and os.path.exists(self.stamp):
            os.unlink(self.stamp)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.needed:
            atomic_write_text(self.stamp, self._expected() + "\n")
