"""Scoring of fairseq-generate output, each number labelled:

- tokenized BLEU: what fairseq-generate --remove-bpe prints (the paper's numbers);
- sacreBLEU: hypotheses detokenized (sacremoses) against the raw, untokenized references, with
  sacreBLEU's signature;
- compound-split BLEU (WMT En-De): exactly fairseq's examples/scaling_nmt compound_split_bleu.sh:
  every ``X-Y`` with non-space on both sides becomes ``X ##AT##-##AT## Y`` (one pass) in hypotheses and
  references, then plain tokenized BLEU. Not in the Admin reference, which reports tokenized BLEU.

Several outputs (one per seed) give each file's scores and the mean ± sample std of tokenized BLEU.
An output that does not cover its whole test set (cut off, or ids missing) is refused.
"""
import math
import re
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import AdminError
from ..files import read_lines


def read_generate_output(path: str) -> Tuple[List[int], List[str], List[str], Optional[str]]:
    """(sentence ids, best hypotheses, references) in corpus order from fairseq-generate's H-/T- lines,
    and its BLEU line. With --nbest > 1 the first H- line of an id (fairseq's best) is taken. A file
    without generate's final BLEU line was cut off: refused."""
    hyps, refs, bleu = {}, {}, None
    try:
        for line in read_lines(path):
            if line.startswith("H-"):
                idx, _, text = (line.split("\t", 2) + ["", ""])[:3]
                hyps.setdefault(int(idx[2:]), text)  # n-best: keep the best (first) hypothesis
            elif line.startswith("T-"):
                idx, text = (line.split("\t", 1) + [""])[:2]
                refs[int(idx[2:])] = text
            elif line.startswith("Generate ") and "BLEU" in line:
                bleu = line.strip()
    except FileNotFoundError:
        raise AdminError(f"no file {path}: pass a fairseq-generate output")
    except ValueError:
        raise AdminError(f"{path}: an H-/T- line without a sentence number: is it fairseq-generate output?")
    if not hyps:
        raise AdminError(f"{path} has no H- lines: is it fairseq-generate output?")
    if bleu is None:
        raise AdminError(f"{path} is incomplete ({len(hyps)} hypotheses, no final 'Generate ... BLEU' line): "
                         "it was cut off; rerun fairseq-generate to the end")
    order = sorted(hyps)
    return order, [hyps[i] for i in order], [refs.get(i, "") for i in order], bleu


def split_compounds(line: str) -> str:
    """fairseq's compound split: perl -ple 's{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g' (one pass)."""
    return re.sub(r"(\S)-(\S)", r"\1 ##AT##-##AT## \2", line)


def tokenized_bleu(hyps: List[str], refs: List[str]):
    import sacrebleu
    return sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", force=True)


def score(generate_out: str, raw_refs: Optional[str] = None, target_lang: str = "en",
          compound_split: bool = False, lowercase: bool = False) -> Dict[str, str]:
    """All the labelled scores of one fairseq-generate output file."""
    import sacrebleu
    from sacremoses import MosesDetokenizer

    ids, hyps, refs, fairseq_line = read_generate_output(generate_out)
    out = {"tokenized BLEU (fairseq-generate --remove-bpe)": fairseq_line.split(": ", 1)[-1]}
    raw = None
    if raw_refs:
        try:
            raw = list(read_lines(raw_refs))
        except FileNotFoundError:
            raise AdminError(f"no file {raw_refs}: pass the raw reference of the generated subset")
    total = len(raw) if raw is not None else ids[-1] + 1
    missing = sorted(set(range(total)) - set(ids))
    if missing:  # fairseq-generate skips some inputs (e.g. too long): the score is not over the whole set
        out["COVERAGE WARNING"] = (f"only {len(ids)} of {total} sentences translated (missing ids "
                                   f"{', '.join(map(str, missing[:10]))}{' ...' if len(missing) > 10 else ''}): "
                                   "these scores are not over the whole test set; fairseq-generate drops the last "
                                   "batch unless given --required-batch-size-multiple 1 (fairseq issue 5036)")
    if raw is None:  # the ids' gaps are visible, sentences missing at the end are not
        out["COVERAGE NOTE"] = (f"{len(ids)} sentences translated; without --raw-ref the test set's size is unknown, "
                                "so sentences missing at its end (fairseq-generate drops a last batch unless given "
                                "--required-batch-size-multiple 1) cannot be detected: pass --raw-ref to check")
    if raw is not None:
        if ids[-1] >= len(raw):
            raise AdminError(f"{raw_refs} has {len(raw)} lines but {generate_out} translates line "
                             f"{ids[-1]}: pass the raw reference of the generated subset")
        detok = MosesDetokenizer(lang=target_lang)
        detok_hyps = [detok.detokenize(h.replace(" @-@ ", "-").split()) for h in hyps]
        metric = sacrebleu.metrics.BLEU(lowercase=lowercase)
        result = metric.corpus_score(detok_hyps, [[raw[i] for i in ids]])
        label = "case-insensitive sacreBLEU" if lowercase else "sacreBLEU"
        out[f"{label} (detokenized vs raw reference)"] = f"{result.score:.2f}  {metric.get_signature()}"
    if compound_split:
        split = tokenized_bleu([split_compounds(h) for h in hyps], [split_compounds(r) for r in refs])
        out["compound-split tokenized BLEU (fairseq's compound_split_bleu.sh)"] = f"{split.score:.2f}"
    return out


def bleu_value(line: str) -> float:
    m = re.search(r"BLEU4? = ([\d.]+)", line)
    if not m:
        raise AdminError(f"no BLEU in {line!r}")
    return float(m.group(1))


def mean_std(values: Sequence[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{statistics.mean(values):.2f} ± {std:.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def add_arguments(p) -> None:
    p.add_argument("generate_out", nargs="+", help="fairseq-generate output(s) (with H-/T- lines); several: one per seed")
    p.add_argument("--raw-ref", help="the untokenized reference of the generated subset, for sacreBLEU")
    p.add_argument("--target-lang", default="en", help="for detokenization")
    p.add_argument("--compound-split", action="store_true", help="also the compound-split BLEU (En-De)")
    p.add_argument("--lowercase", action="store_true", help="case-insensitive sacreBLEU (lowercased data)")
    p.add_argument("--paper", help="the paper's figure, printed next to the mean (e.g. '35.67 ± 0.15')")


def report(paths: Sequence[str], raw_ref: str = None, target_lang: str = "en", compound_split: bool = False,
           lowercase: bool = False, paper: str = None) -> List[str]:
    """The lines ``fairseq-admin score`` prints: each file's labelled scores, then with several files
    (seeds) or a paper figure, the tokenized BLEU's mean ± std next to the paper's."""
    lines, tokenized = [], []
    for path in paths:
        scores = score(path, raw_ref, target_lang, compound_split, lowercase)
        prefix = f"{path}: " if len(paths) > 1 else ""
        lines += [f"{prefix}{label}: {value}" for label, value in scores.items()]
        tokenized.append(bleu_value(scores["tokenized BLEU (fairseq-generate --remove-bpe)"]))
    if len(tokenized) > 1 or paper:
        seeds = f"mean ± std over {len(tokenized)} seeds" if len(tokenized) > 1 else "one seed"
        lines.append(f"tokenized BLEU, {seeds}: {mean_std(tokenized)}{f'   (the paper: {paper})' if paper else ''}")
    from ..profile_file import versions_line
    lines.append(versions_line())
    return lines
