"""Scoring of fairseq-generate output, each number labelled:

- tokenized BLEU: what fairseq-generate --remove-bpe prints (the paper's numbers);
- sacreBLEU: hypotheses detokenized (sacremoses) against the raw, untokenized references, with
  sacreBLEU's signature;
- compound-split BLEU (WMT En-De): tokenized BLEU after splitting hyphenated compounds into
  ``a ##AT##-##AT## b`` in hypotheses and references, as the Transformer papers report.
"""
import re
from typing import Dict, List, Optional, Tuple

from .errors import AdminError


def read_generate_output(path: str) -> Tuple[List[int], List[str], List[str], Optional[str]]:
    """(line ids, hypotheses, references) in corpus order from fairseq-generate's H-/T- lines, and
    its BLEU line. Ids are line numbers of the generated subset (fairseq skips empty source lines)."""
    hyps, refs, bleu = {}, {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("H-"):
                idx, _, text = line.rstrip("\n").split("\t", 2)
                hyps[int(idx[2:])] = text
            elif line.startswith("T-"):
                idx, text = (line.rstrip("\n").split("\t", 1) + [""])[:2]
                refs[int(idx[2:])] = text
            elif line.startswith("Generate ") and "BLEU" in line:
                bleu = line.strip()
    if not hyps:
        raise AdminError(f"{path} has no H- lines: is it fairseq-generate output?")
    order = sorted(hyps)
    return order, [hyps[i] for i in order], [refs.get(i, "") for i in order], bleu


def split_compounds(line: str) -> str:
    return re.sub(r"(\S)-(\S)", r"\1 ##AT##-##AT## \2", line.replace(" @-@ ", "-"))


def tokenized_bleu(hyps: List[str], refs: List[str]):
    import sacrebleu
    return sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", force=True)


def score(generate_out: str, raw_refs: Optional[str] = None, target_lang: str = "en",
          compound_split: bool = False, lowercase: bool = False) -> Dict[str, str]:
    """All the labelled scores of one fairseq-generate output file."""
    import sacrebleu
    from sacremoses import MosesDetokenizer

    ids, hyps, refs, fairseq_line = read_generate_output(generate_out)
    out = {"tokenized BLEU (fairseq-generate --remove-bpe)":
           fairseq_line.split(": ", 1)[-1] if fairseq_line else f"{tokenized_bleu(hyps, refs).score:.2f}"}
    if raw_refs:
        with open(raw_refs, encoding="utf-8") as f:
            raw = [line.rstrip("\n") for line in f]
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
        out["compound-split tokenized BLEU"] = f"{split.score:.2f}"
    return out


def add_arguments(p) -> None:
    p.add_argument("generate_out", help="fairseq-generate output (with H-/T- lines)")
    p.add_argument("--raw-ref", help="the untokenized reference of the generated subset, for sacreBLEU")
    p.add_argument("--target-lang", default="en", help="for detokenization")
    p.add_argument("--compound-split", action="store_true", help="also the compound-split BLEU (En-De)")
    p.add_argument("--lowercase", action="store_true", help="case-insensitive sacreBLEU (lowercased data)")


def run(args) -> None:
    for label, value in score(args.generate_out, args.raw_ref, args.target_lang, args.compound_split,
                              args.lowercase).items():
        print(f"{label}: {value}")
