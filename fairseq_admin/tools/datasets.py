"""Downloading and unpacking the recipes' corpora: IWSLT14 De-En and WMT14 En-De.

Archives are looked for first in the archive folder (where a manually downloaded copy can be
placed), then downloaded there atomically. A SHA-256 is checked against the pinned value when one
is known, otherwise recorded beside the archive on first use and checked on every later use.
Offline, the error names the URL and the folder to put the archive in.
"""
import gzip
import io
import logging
import os
import re
import tarfile
import urllib.error
import urllib.request
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from ..errors import AdminError
from ..files import atomic_write, atomic_write_lines, atomic_write_text, file_sha256, read_lines

logger = logging.getLogger(__name__)

# (archive name, URL, pinned sha256 or None)
IWSLT14 = [("de-en.tgz", "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz", None)]
WMT14 = [
    ("training-parallel-europarl-v7.tgz", "http://statmt.org/wmt13/training-parallel-europarl-v7.tgz", None),
    ("training-parallel-commoncrawl.tgz", "http://statmt.org/wmt13/training-parallel-commoncrawl.tgz", None),
    # news-commentary v12 (WMT17's), as the Admin reference's script; fairseq's own script takes v9
    ("training-parallel-nc-v12.tgz", "http://data.statmt.org/wmt17/translation-task/training-parallel-nc-v12.tgz", None),
    ("dev.tgz", "http://statmt.org/wmt14/dev.tgz", None),
    ("test-full.tgz", "http://statmt.org/wmt14/test-full.tgz", None),
]


def fetch(name: str, url: str, folder: str, pinned: Optional[str] = None) -> str:
    """The path of archive ``name`` in ``folder``: found there or downloaded, checksum verified."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        logger.info(f"downloading {url}")
        try:
            def write(tmp):
                with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as out:
                    for chunk in iter(lambda: r.read(1 << 20), b""):
                        out.write(chunk)
            atomic_write(path, write)
        except (urllib.error.URLError, OSError) as e:
            raise AdminError(f"cannot download {url} ({getattr(e, 'reason', e)}): download it by hand "
                             f"and place it at {path}, then rerun")
    digest, record = file_sha256(path), path + ".sha256"
    expected = pinned
    if not expected and os.path.exists(record):
        with open(record) as f:
            expected = f.read().split()[0]
    if expected and digest != expected:
        raise AdminError(f"{path}: SHA-256 {digest} does not match the expected {expected}; delete it "
                         "and download again")
    if not expected:
        atomic_write_text(record, f"{digest}  {name}\n")
        logger.info(f"{name}: no pinned checksum; recorded {digest} in {record} for later runs")
    return path


def read_member(archive: str, pattern: str) -> Iterator[str]:
    """Lines (without newline) of the one member of a .tgz whose path matches the regex ``pattern``,
    streamed. Only '\\n' ends a line: crawled text holds \\x0b, \\x0c, \\x85, U+2028 and U+2029, on which
    str.splitlines would split one side and shift every later pair."""
    with tarfile.open(archive, "r:*") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and re.search(pattern, m.name)]
        if len(members) != 1:
            raise AdminError(f"{archive}: expected one member matching {pattern!r}, found "
                             f"{[m.name for m in members] or 'none'}: is the archive complete?")
        raw = tar.extractfile(members[0])
        if members[0].name.endswith(".gz"):
            raw = gzip.GzipFile(fileobj=raw)
        for line in io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n"):
            yield line[:-1].rstrip("\r") if line.endswith("\n") else line


_SEG = re.compile(r"<seg[^>]*>\s*(.*?)\s*</seg>")


def iwslt_train_lines(lines: Iterable[str]) -> List[str]:
    """train.tags.*, as prepare-iwslt14.sh reads them: drop the <url>, <talkid> and <keywords>
    lines, keep titles and descriptions without their tags."""
    out = []
    for line in lines:
        if "<url>" in line or "<talkid>" in line or "<keywords>" in line:
            continue
        out.append(re.sub(r"</?(title|description)>", "", line).strip())
    return out


def sgm_lines(lines: Iterable[str]) -> List[str]:
    """The text of every <seg> of an .xml/.sgm file (’ written as ', as prepare-iwslt14.sh does)."""
    return [m.group(1).replace("\u2019", "'") for line in lines for m in [_SEG.search(line)] if m]


def extract_iwslt14(archive: str, raw: str, src="de", tgt="en") -> None:
    """raw/{train,test}.{de,en} as fairseq's prepare-iwslt14.sh reads them; test is dev2010 +
    TEDX dev2012 + tst2010-2012. The valid split (lines 23, 46, ... of the cleaned training data) is
    made by ``prepare_corpus(valid_every=23)``."""
    if all(os.path.exists(os.path.join(raw, f"{s}.{l}")) for s in ("train", "test") for l in (src, tgt)):
        return
    pair = f"{src}-{tgt}"
    train = {l: iwslt_train_lines(read_member(archive, rf"train\.tags\.{pair}\.{l}$")) for l in (src, tgt)}
    if len(train[src]) != len(train[tgt]):
        raise AdminError(f"{archive}: train.tags sides differ in length")
    # the order of prepare-iwslt14.sh's test set
    tests = ["IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010", "IWSLT14.TED.tst2011",
             "IWSLT14.TED.tst2012"]
    for l in (src, tgt):
        test = [seg for t in tests for seg in sgm_lines(read_member(archive, rf"{re.escape(t)}\.{pair}\.{l}\.xml$"))]
        atomic_write_lines(os.path.join(raw, f"test.{l}"), test)
        atomic_write_lines(os.path.join(raw, f"train.{l}"), train[l])


def extract_wmt14(archives: Dict[str, str], raw: str, src="en", tgt="de") -> None:
    """raw/{train,valid,test}.{en,de}: europarl v7 + commoncrawl + news-commentary v12 for training,
    newstest2013 for validation, the full newstest2014 for test."""
    if all(os.path.exists(os.path.join(raw, f"{s}.{l}")) for s in ("train", "valid", "test") for l in (src, tgt)):
        return
    corpora: List[Tuple[str, str]] = [
        ("training-parallel-europarl-v7.tgz", r"europarl-v7\.de-en\.{}$"),
        ("training-parallel-commoncrawl.tgz", r"commoncrawl\.de-en\.{}$"),
        ("training-parallel-nc-v12.tgz", r"news-commentary-v12\.de-en\.{}$"),
    ]
    for l in (src, tgt):
        train = (x for name, pat in corpora for x in read_member(archives[name], pat.format(l)))
        atomic_write_lines(os.path.join(raw, f"train.{l}"), train)  # streamed: never the whole corpus in memory
        atomic_write_lines(os.path.join(raw, f"valid.{l}"), read_member(archives["dev.tgz"], rf"newstest2013\.{l}$"))
        side = "src" if l == src else "ref"
        atomic_write_lines(os.path.join(raw, f"test.{l}"),
                    sgm_lines(read_member(archives["test-full.tgz"], rf"newstest2014-deen-{side}\.{l}\.sgm$")))
    counts = {l: sum(1 for _ in read_lines(os.path.join(raw, f"train.{l}"))) for l in (src, tgt)}
    if counts[src] != counts[tgt]:
        raise AdminError(f"WMT14 training sides differ in length ({counts}): an archive is incomplete")


def add_arguments(p) -> None:
    p.add_argument("corpus", choices=["iwslt14", "wmt14"])
    p.add_argument("raw", help="output folder for {train,valid,test}.{src,tgt}")
    p.add_argument("--archives", required=True, help="folder for the downloaded (or hand-placed) archives")


def run(args) -> None:
    if args.corpus == "iwslt14":
        (name, url, pin), = IWSLT14
        extract_iwslt14(fetch(name, url, args.archives, pin), args.raw)
    else:
        extract_wmt14({name: fetch(name, url, args.archives, pin) for name, url, pin in WMT14}, args.raw)
    logger.info(f"wrote {args.raw}/{{train,valid,test}}.*")
