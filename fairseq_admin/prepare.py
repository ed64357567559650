"""Corpus preparation for the recipes: Moses tokenization (sacremoses), cleaning, joint BPE (subword-nmt).

Every output is written atomically and a step whose output exists is skipped, so a rerun after
an interruption resumes where it stopped.
"""
import argparse
import logging
import os
from typing import List

from .errors import AdminError
from .files import atomic_write, atomic_write_lines as _write_lines

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def _read_lines(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def tokenize_file(src: str, dst: str, lang: str, lowercase: bool, aggressive_dash: bool = True) -> None:
    """Moses normalize + tokenize one file (``-a`` hyphen splitting as the WMT recipe), optional lowercasing."""
    if os.path.exists(dst):
        return
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    norm, tok = MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)

    def lines():
        for line in _read_lines(src):
            out = tok.tokenize(norm.normalize(line), aggressive_dash_splits=aggressive_dash,
                               return_str=True, escape=False)
            yield out.lower() if lowercase else out
    _write_lines(dst, lines())


def clean_pair(src_in: str, tgt_in: str, src_out: str, tgt_out: str, min_len=1, max_len=80, ratio=1.5) -> None:
    """Drop pairs with a side outside [min_len, max_len] tokens or a length ratio above ``ratio``
    (the clean-corpus-n step of the reference recipes)."""
    if os.path.exists(src_out) and os.path.exists(tgt_out):
        return
    kept = [(s, t) for s, t in zip(_read_lines(src_in), _read_lines(tgt_in))
            if min_len <= len(s.split()) <= max_len and min_len <= len(t.split()) <= max_len
            and max(len(s.split()), len(t.split())) <= ratio * min(len(s.split()), len(t.split()))]
    _write_lines(tgt_out, (t for _, t in kept))
    _write_lines(src_out, (s for s, _ in kept))


def learn_joint_bpe(files: List[str], codes: str, merges: int) -> None:
    """Learn joint BPE codes over the concatenation of ``files`` (subword-nmt)."""
    if os.path.exists(codes):
        return
    import io

    import contextlib

    from subword_nmt.learn_bpe import learn_bpe

    text = io.StringIO("".join(line + "\n" for f in files for line in _read_lines(f)))

    def write(tmp):
        # subword-nmt draws a tqdm bar on stderr: keep it out of the logs
        with open(tmp, "w", encoding="utf-8") as out, contextlib.redirect_stderr(io.StringIO()):
            learn_bpe(text, out, merges, min_frequency=2)
    atomic_write(codes, write)


def apply_bpe_file(codes: str, src: str, dst: str) -> None:
    if os.path.exists(dst):
        return
    from subword_nmt.apply_bpe import BPE

    with open(codes, encoding="utf-8") as f:
        bpe = BPE(f)
    _write_lines(dst, (bpe.process_line(line) for line in _read_lines(src)))


def prepare_corpus(raw: str, out: str, src: str, tgt: str, bpe_merges: int, lowercase: bool,
                   max_len: int = 80, max_ratio: float = 1.5, valid_every: int = 0) -> None:
    """raw/{split}.{lang} -> out/tok/*, out/bpe/{split}.{lang} and out/bpe/codes (joint BPE).

    train and valid are cleaned (length 1..max_len, ratio <= max_ratio), test never is. With
    ``valid_every`` = n, raw/ has no valid split: it is every n-th line of the cleaned training data
    (the IWSLT14 recipe, n = 23), and training keeps the other lines.
    """
    raw_splits = ("train", "test") if valid_every else SPLITS
    for split in raw_splits:
        for lang in (src, tgt):
            if not os.path.isfile(os.path.join(raw, f"{split}.{lang}")):
                raise AdminError(f"missing {os.path.join(raw, f'{split}.{lang}')}: a corpus folder needs "
                                 f"{{{','.join(raw_splits)}}}.{{{src},{tgt}}} plain-text files, line-aligned")
        if len(_read_lines(os.path.join(raw, f"{split}.{src}"))) != len(_read_lines(os.path.join(raw, f"{split}.{tgt}"))):
            raise AdminError(f"{raw}/{split}.{src} and {split}.{tgt} have different line counts: "
                             "the two sides must be line-aligned")
    tok, bpe = os.path.join(out, "tok"), os.path.join(out, "bpe")

    def path(split, stage, lang):
        return os.path.join(tok, f"{split}.{stage}.{lang}")

    for split in raw_splits:
        for lang in (src, tgt):
            logger.info(f"tokenize {split}.{lang}")
            tokenize_file(os.path.join(raw, f"{split}.{lang}"), path(split, "raw", lang), lang, lowercase)
        if split == "test":  # the test set is never filtered
            for lang in (src, tgt):
                if not os.path.exists(path(split, "clean", lang)):
                    _write_lines(path(split, "clean", lang), _read_lines(path(split, "raw", lang)))
            continue
        stage = "full" if valid_every and split == "train" else "clean"
        clean_pair(path(split, "raw", src), path(split, "raw", tgt), path(split, stage, src),
                   path(split, stage, tgt), max_len=max_len, ratio=max_ratio)
    if valid_every:
        for lang in (src, tgt):
            lines = _read_lines(path("train", "full", lang))
            if not os.path.exists(path("valid", "clean", lang)):
                _write_lines(path("valid", "clean", lang), lines[::valid_every])
            if not os.path.exists(path("train", "clean", lang)):
                _write_lines(path("train", "clean", lang), (x for i, x in enumerate(lines) if i % valid_every))
    codes = os.path.join(bpe, "codes")
    logger.info(f"learn joint BPE ({bpe_merges} merges)")
    learn_joint_bpe([path("train", "clean", lang) for lang in (src, tgt)], codes, bpe_merges)
    for split in SPLITS:
        for lang in (src, tgt):
            apply_bpe_file(codes, path(split, "clean", lang), os.path.join(bpe, f"{split}.{lang}"))
    logger.info(f"prepared {out}/bpe/{{train,valid,test}}.{{{src},{tgt}}}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("raw", help="folder with {train,valid,test}.{SRC,TGT} plain text")
    p.add_argument("out", help="output folder (tok/ and bpe/ are written there)")
    p.add_argument("--source-lang", "-s", required=True)
    p.add_argument("--target-lang", "-t", required=True)
    p.add_argument("--bpe-merges", type=int, default=10000)
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--max-len", type=int, default=80, help="drop train/valid pairs longer than this")
    p.add_argument("--max-ratio", type=float, default=1.5,
                   help="drop train/valid pairs whose length ratio exceeds this (Moses clean-corpus-n)")
    p.add_argument("--valid-every", type=int, default=0,
                   help="no raw valid split: take every N-th cleaned training line (IWSLT14: 23)")


def run(args) -> None:
    prepare_corpus(args.raw, args.out, args.source_lang, args.target_lang, args.bpe_merges,
                   args.lowercase, args.max_len, args.max_ratio, args.valid_every)
