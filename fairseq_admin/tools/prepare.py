"""Corpus preparation as the Admin reference's scripts do it: Moses tokenization (sacremoses), cleaning,
lowercasing, the valid split, joint BPE (subword-nmt).

The settings name each Moses step of the reference (ADMIN_SPEC section 9):

=========================  ==========================================  ======================================
setting                    IWSLT14 (fairseq 0.8's prepare-iwslt14.sh)  WMT14 (the reference's own script)
=========================  ==========================================  ======================================
normalize-punctuation      no                                          train + valid (never test)
remove-non-printing-char   no                                          train + valid (never test)
tokenizer                  -l LANG (hyphens stay in words)             -a -l LANG
escaping (' -> &apos; ...) on                                          on
cleaned splits             train: lengths 1-175, ratio 1.5             train: lengths 1-80, ratio 9
lowercase                  every split                                 no
valid                      every 23rd cleaned train line (23, 46, ..)  newstest2013, not cleaned
BPE                        joint, 10,000 merges on train               joint, 32,764 merges on cleaned train
=========================  ==========================================  ======================================

Every step's output is stamped with its settings and a hash of its inputs (files.StampedStep): a rerun
reuses an output only if both are the same, and redoes the step (and what follows) otherwise.
"""
import argparse
import dataclasses
import logging
import os
from typing import Iterator, List, Optional

from ..errors import AdminError
from . import moses
from .moses import remove_non_printing  # noqa: F401  (re-exported)
from ..files import StampedStep, atomic_write, atomic_write_lines as _write_lines, read_lines

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclasses.dataclass
class PrepareSettings:
    """How a corpus is tokenized, cleaned and split (defaults: the WMT14 reference)."""
    bpe_merges: int = 32764
    lowercase: bool = False
    normalize: bool = True  # normalize-punctuation + remove-non-printing-char on train and valid
    aggressive_hyphen_split: bool = True  # Moses -a
    escape: bool = True  # Moses escaping (' -> &apos;, " -> &quot;, & -> &amp;, ...)
    clean_splits: tuple = ("train",)
    min_len: int = 1
    max_len: int = 80
    max_ratio: float = 9.0
    valid_every: int = 0  # >0: valid = every N-th cleaned train line, removed from train (IWSLT14: 23)

    @classmethod
    def iwslt14(cls) -> "PrepareSettings":
        return cls(bpe_merges=10000, lowercase=True, normalize=False, aggressive_hyphen_split=False,
                   max_len=175, max_ratio=1.5, valid_every=23)


def tokenize_lines(lines, lang: str, s: PrepareSettings, normalize: bool) -> Iterator[str]:
    """The Moses scripts on one split, as the reference pipes them: normalize-punctuation.perl |
    remove-non-printing-char.perl (if ``normalize``) | tokenizer.perl [-a] | lowercase.perl (if asked);
    byte for byte (see moses.py)."""
    tok = moses.tokenizer(lang)
    for line in lines:
        if normalize:
            line = moses.remove_non_printing(moses.normalize_punctuation(line, lang))
        out = tok.tokenize_line(line, s.aggressive_hyphen_split, s.escape)
        yield moses.perl_lc(out) if s.lowercase else out


def keep_pair(src: str, tgt: str, min_len: int, max_len: int, ratio: float) -> bool:
    """Moses clean-corpus-n.perl's test on two tokenized lines."""
    return any(True for _ in moses.clean_corpus([(src, tgt)], min_len, max_len, ratio))


def clean_pair(src_in: str, tgt_in: str, src_out: str, tgt_out: str, min_len=1, max_len=80, ratio=9.0) -> None:
    """clean-corpus-n.perl: drop pairs with a side outside [min_len, max_len] tokens, a length ratio
    above ``ratio`` or a token over 1,000 characters; kept lines as it writes them."""
    def kept(side):
        for pair in moses.clean_corpus(zip(read_lines(src_in), read_lines(tgt_in)), min_len, max_len, ratio):
            yield pair[side]
    _write_lines(src_out, kept(0))
    _write_lines(tgt_out, kept(1))


def learn_joint_bpe(files: List[str], codes: str, merges: int) -> None:
    """Learn joint BPE codes over the concatenation of ``files`` (subword-nmt)."""
    import contextlib
    import io
    import itertools

    from subword_nmt.learn_bpe import learn_bpe

    def write(tmp):
        # subword-nmt reads the text twice at most through get_vocab: one pass over a generator is enough
        text = (line + "\n" for line in itertools.chain.from_iterable(read_lines(f) for f in files))
        # subword-nmt draws a tqdm bar on stderr: keep it out of the logs
        with open(tmp, "w", encoding="utf-8") as out, contextlib.redirect_stderr(io.StringIO()):
            learn_bpe(text, out, merges, min_frequency=2)
    atomic_write(codes, write)


def apply_bpe_file(codes: str, src: str, dst: str) -> None:
    from subword_nmt.apply_bpe import BPE

    with open(codes, encoding="utf-8") as f:
        bpe = BPE(f)
    _write_lines(dst, (bpe.process_line(line) for line in read_lines(src)))


def check_raw(raw: str, src: str, tgt: str, splits) -> None:
    for split in splits:
        counts = []
        for lang in (src, tgt):
            path = os.path.join(raw, f"{split}.{lang}")
            if not os.path.isfile(path):
                raise AdminError(f"missing {path}: a corpus folder needs {{{','.join(splits)}}}.{{{src},{tgt}}} "
                                 "plain-text files, line-aligned")
            counts.append(sum(1 for _ in read_lines(path)))
        if counts[0] != counts[1]:
            raise AdminError(f"{raw}/{split}.{src} and {split}.{tgt} have different line counts "
                             f"({counts[0]} vs {counts[1]}): the two sides must be line-aligned")
        if counts[0] == 0:
            raise AdminError(f"{raw}/{split}.{src} and {split}.{tgt} are empty: a corpus needs at least one line "
                             f"in every split ({', '.join(splits)})")


def prepare_corpus(raw: str, out: str, src: str, tgt: str, settings: Optional[PrepareSettings] = None) -> None:
    """raw/{split}.{lang} -> out/tok/*, out/bpe/{split}.{lang} and out/bpe/codes (joint BPE)."""
    s = settings or PrepareSettings()
    raw_splits = ("train", "test") if s.valid_every else SPLITS
    check_raw(raw, src, tgt, raw_splits)
    tok, bpe = os.path.join(out, "tok"), os.path.join(out, "bpe")
    tok_conf = {k: getattr(s, k) for k in ("lowercase", "aggressive_hyphen_split", "escape")}
    clean_conf = {k: getattr(s, k) for k in ("clean_splits", "min_len", "max_len", "max_ratio")}
    tok_conf["engine"] = clean_conf["engine"] = moses.ENGINE

    def path(split, stage, lang):
        return os.path.join(tok, f"{split}.{stage}.{lang}")

    for split in raw_splits:
        normalize = s.normalize and split != "test"  # the reference tokenizes its test set only
        for lang in (src, tgt):
            src_file, dst = os.path.join(raw, f"{split}.{lang}"), path(split, "tok", lang)
            with StampedStep([dst], [src_file], {"step": "tokenize", "normalize": normalize, **tok_conf}) as step:
                if step.needed:
                    logger.info(f"tokenize {split}.{lang}")
                    _write_lines(dst, tokenize_lines(read_lines(src_file), lang, s, normalize))
        stage = "full" if s.valid_every and split == "train" else "clean"
        outs = [path(split, stage, src), path(split, stage, tgt)]
        ins = [path(split, "tok", src), path(split, "tok", tgt)]
        with StampedStep(outs, ins, {"step": "clean", "cleaned": split in s.clean_splits, **clean_conf}) as step:
            if step.needed:
                if split in s.clean_splits:
                    clean_pair(*ins, *outs, min_len=s.min_len, max_len=s.max_len, ratio=s.max_ratio)
                else:
                    for i, o in zip(ins, outs):
                        _write_lines(o, read_lines(i))
    if s.valid_every:
        n = s.valid_every
        for lang in (src, tgt):
            full = path("train", "full", lang)
            outs = [path("valid", "clean", lang), path("train", "clean", lang)]
            with StampedStep(outs, [full], {"step": "valid_every", "n": n}) as step:
                if step.needed:  # awk 'NR % n == 0': 1-based lines n, 2n, ... go to valid
                    _write_lines(outs[0], (x for i, x in enumerate(read_lines(full), 1) if i % n == 0))
                    _write_lines(outs[1], (x for i, x in enumerate(read_lines(full), 1) if i % n != 0))
    codes = os.path.join(bpe, "codes")
    train = [path("train", "clean", lang) for lang in (src, tgt)]
    if not any(True for _ in read_lines(train[0])):
        raise AdminError(f"no training pair is left after cleaning {raw}/train.* (lengths {s.min_len}-{s.max_len} "
                         f"tokens, ratio {s.max_ratio}): check the files, or raise --max-len / --max-ratio")
    with StampedStep([codes], train, {"step": "learn_bpe", "merges": s.bpe_merges}) as step:
        if step.needed:
            logger.info(f"learn joint BPE ({s.bpe_merges} merges)")
            learn_joint_bpe(train, codes, s.bpe_merges)
    for split in SPLITS:
        for lang in (src, tgt):
            dst, text = os.path.join(bpe, f"{split}.{lang}"), path(split, "clean", lang)
            with StampedStep([dst], [codes, text], {"step": "apply_bpe"}) as step:
                if step.needed:
                    apply_bpe_file(codes, text, dst)
    for split in ("valid", "test"):  # kept whole (the reference cleans train only), but say what fairseq will do
        for lang in (src, tgt):
            warn_long_lines(os.path.join(bpe, f"{split}.{lang}"))
    logger.info(f"prepared {out}/bpe/{{train,valid,test}}.{{{src},{tgt}}}")


#: fairseq's default --max-source-positions / --max-target-positions (a sentence gets one more: </s>)
FAIRSEQ_MAX_POSITIONS = 1024


def warn_long_lines(path: str, limit: int = FAIRSEQ_MAX_POSITIONS) -> List[int]:
    """Line numbers (1-based) of ``path`` with more BPE tokens than fairseq's default positions allow,
    with one warning: fairseq-train would stop at validation on them, fairseq-generate too."""
    long = [i for i, line in enumerate(read_lines(path), start=1) if len(line.split()) + 1 > limit]
    if long:
        logger.warning(f"{path}: {len(long)} line(s) longer than fairseq's {limit} positions (line "
                       f"{', '.join(map(str, long[:5]))}{' ...' if len(long) > 5 else ''}); they are kept, as the "
                       "reference keeps valid and test whole, but fairseq-train and fairseq-generate stop on them: "
                       "shorten or remove them in the raw files, or pass --skip-invalid-size-inputs-valid-test "
                       "(the scores then cover fewer sentences)")
    return long


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = PrepareSettings()
    p.add_argument("raw", help="folder with {train,valid,test}.{SRC,TGT} plain text")
    p.add_argument("out", help="output folder (tok/ and bpe/ are written there)")
    p.add_argument("--source-lang", "-s", required=True)
    p.add_argument("--target-lang", "-t", required=True)
    p.add_argument("--style", choices=["wmt14", "iwslt14"], default="wmt14",
                   help="the reference script whose settings are the defaults (see --help of each flag)")
    p.add_argument("--bpe-merges", type=int, help=f"joint BPE merges (wmt14 {d.bpe_merges}, iwslt14 10000)")
    p.add_argument("--lowercase", action="store_true", default=None, help="lowercase every split (iwslt14)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", default=None,
                   help="skip normalize-punctuation and remove-non-printing-char (iwslt14 skips them)")
    p.add_argument("--no-aggressive-hyphen-split", dest="aggressive_hyphen_split", action="store_false",
                   default=None, help="tokenize without Moses -a (iwslt14)")
    p.add_argument("--no-escape", dest="escape", action="store_false", default=None,
                   help="Moses -no-escape (both references escape)")
    p.add_argument("--clean-valid", action="store_true", help="also clean the valid split (the references do not)")
    p.add_argument("--max-len", type=int, help="drop train pairs longer than this (wmt14 80, iwslt14 175)")
    p.add_argument("--max-ratio", type=float,
                   help="drop train pairs whose length ratio exceeds this (wmt14 9, iwslt14 1.5)")
    p.add_argument("--valid-every", type=int,
                   help="no raw valid split: lines N, 2N, ... of the cleaned train become valid (iwslt14: 23)")


def settings_from_args(args) -> PrepareSettings:
    s = PrepareSettings.iwslt14() if args.style == "iwslt14" else PrepareSettings()
    changes = {k: getattr(args, k) for k in ("bpe_merges", "lowercase", "normalize", "aggressive_hyphen_split",
                                             "escape", "max_len", "max_ratio", "valid_every")
               if getattr(args, k) is not None}
    if args.clean_valid:
        changes["clean_splits"] = ("train", "valid")
    for flag, key, low in (("--bpe-merges", "bpe_merges", 1), ("--max-len", "max_len", 1)):
        value = changes.get(key)
        if value is not None and value < low:
            raise AdminError(f"{flag} {value}: give a whole number of at least {low}")
    if changes.get("valid_every") is not None and (changes["valid_every"] < 0 or changes["valid_every"] == 1):
        raise AdminError(f"--valid-every {changes['valid_every']}: give 0 (the raw valid split) or N >= 2 "
                         "(lines N, 2N, ... of the cleaned train become valid)")
    if changes.get("max_ratio") is not None and not changes["max_ratio"] >= 1:
        raise AdminError(f"--max-ratio {changes['max_ratio']}: give a length ratio of at least 1 (iwslt14 1.5, wmt14 9)")
    return dataclasses.replace(s, **changes)


def run(args) -> None:
    prepare_corpus(args.raw, args.out, args.source_lang, args.target_lang, settings_from_args(args))
