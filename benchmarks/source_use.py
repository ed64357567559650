"""How much a trained translation model uses its source (issue 15: why Admin seed 2 stalls).

For each checkpoint, fairseq-validate measures the loss of the valid and test references twice: with each
sentence's own source, and with a mismatched one (the sources rotated by half the split, so that a
sentence gets the source of a distant one). A model that translates pays for the wrong source; a decoder
that has become a language model of the target side, ignoring the encoder, pays nothing. The difference
in nll (bits per target token, fairseq's base-2 loss) is its use of the source.

The mismatched subsets are built from the study's own binarized data (same tokens, same dictionaries),
in a temporary folder; the true-source subsets are the study's files, copied.

    python benchmarks/source_use.py [--bin work/bench/study-bin] [--out benchmarks/results-long/source-use]
        [--runs-dir benchmarks/results-long] [--only REGEX] [--threads 1]

By default every run folder under RUNS_DIR/checkpoints, each with checkpoint_best.pt and
checkpoint_last.pt (the update each holds is read from the run's log in RUNS_DIR); runs whose log does not
say "done training" are skipped (fairseq rewrites their checkpoints as they train).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import study  # noqa: E402

SPLITS = ("valid", "test")
MISMATCHED = "mis"  # subset suffix; no digit (fairseq 0.12 concatenates valid1, valid2, ... into valid)
CHECKPOINTS = "checkpoint_best.pt,checkpoint_last.pt"


def language_pair(bin_dir):
    """(source, target) from the binarized file names, e.g. valid.de-en.de.bin."""
    pairs = {m.group(1, 2) for m in (re.match(r"valid\.(\w+)-(\w+)\.\w+\.bin$", os.path.basename(p))
                                      for p in glob.glob(os.path.join(bin_dir, "valid.*-*.*.bin"))) if m}
    if len(pairs) != 1:
        sys.exit(f"source_use: error: expected one language pair of valid.SRC-TGT.*.bin in {bin_dir}, found "
                 f"{sorted(pairs) or 'none'}: pass --bin a folder made by fairseq-preprocess")
    return pairs.pop()


def rotation(n):
    """Sentence i gets the source of sentence (i + n // 2) mod n: no sentence keeps its own (n ≥ 2)."""
    return [(i + n // 2) % n for i in range(n)]


def build_data(bin_dir, dest, splits=SPLITS):
    """dest: the dictionaries, each split as it is, and SPLITmis with the sources rotated."""
    import torch
    from fairseq.data import Dictionary, data_utils, indexed_dataset

    src, tgt = language_pair(bin_dir)
    for name in os.listdir(bin_dir):
        if name.startswith("dict."):
            shutil.copy(os.path.join(bin_dir, name), dest)
    sizes = {}
    for split in splits:
        prefix = f"{split}.{src}-{tgt}"
        for lang in (src, tgt):
            for ext in ("bin", "idx"):
                shutil.copy(os.path.join(bin_dir, f"{prefix}.{lang}.{ext}"), dest)
                if lang == tgt:  # the references stay in place
                    shutil.copy(os.path.join(bin_dir, f"{prefix}.{lang}.{ext}"),
                                os.path.join(dest, f"{split}{MISMATCHED}.{src}-{tgt}.{lang}.{ext}"))
        dictionary = Dictionary.load(os.path.join(bin_dir, f"dict.{src}.txt"))
        source = data_utils.load_indexed_dataset(os.path.join(bin_dir, f"{prefix}.{src}"), dictionary)
        out = os.path.join(dest, f"{split}{MISMATCHED}.{src}-{tgt}.{src}")
        builder = indexed_dataset.make_builder(out + ".bin", impl="mmap", vocab_size=len(dictionary))
        for j in rotation(len(source)):
            builder.add_item(torch.as_tensor(source[j]))
        builder.finalize(out + ".idx")
        sizes[split] = len(source)
    return sizes


VALID_LINE = re.compile(r"valid on '(\w+)' subset \| loss ([\d.]+|nan|inf) \| nll_loss ([\d.]+|nan|inf)")


def validate(data, checkpoint, splits, threads, multiple=1):
    subsets = ",".join(s for split in splits for s in (split, split + MISMATCHED))
    cmd = ["fairseq-validate", data, "--user-dir", os.path.join(ROOT, "fairseq_admin"), "--task", "translation_admin", "--path", checkpoint,
           "--valid-subset", subsets, "--max-tokens", "2048", "--required-batch-size-multiple", str(multiple),
           "--num-workers", "0", "--cpu", "--log-format", "simple"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    text = proc.stdout + proc.stderr
    found = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in VALID_LINE.finditer(text)}
    if proc.returncode != 0 or set(found) != set(subsets.split(",")):
        sys.exit(f"source_use: error: fairseq-validate failed on {checkpoint} (exit {proc.returncode}):\n"
                 + "\n".join(text.splitlines()[-15:]))
    return cmd, found


def checkpoint_update(log_path, name):
    """The update a checkpoint_best.pt / checkpoint_last.pt holds, from the run's log (fairseq names only the
    first file of each save; best and last are copies): best, the last update with the lowest valid loss
    (fairseq replaces it on a tie); last, the latest save. None when the log has neither."""
    interval = re.fullmatch(r"checkpoint_\d+_(\d+)\.pt", name)
    if interval:
        return int(interval.group(1))
    text = study._read(log_path) or ""
    if name == "checkpoint_best.pt":
        valid = sorted(dict(study.parse(log_path)["valid"]).items()) if text else []
        return max((u for u, v in valid if v == min(x for _, x in valid)), default=None)
    saves = [int(u) for u in re.findall(r"Saved checkpoint \S+ \(epoch \d+ @ (\d+) updates", text)]
    return max(saves, default=None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "work", "bench", "study-bin"), help="the runs' binarized data")
    p.add_argument("--runs-dir", default=os.path.join(ROOT, "benchmarks", "results-long"),
                   help="a study's results folder: its checkpoints/ and logs")
    p.add_argument("--out", default=None, help="where the table and log go (default RUNS_DIR/source-use)")
    p.add_argument("--only", default="", help="a regex: only runs whose name matches")
    p.add_argument("--checkpoints", default=CHECKPOINTS,
                   help=f"comma-separated file names or globs in each run folder (default {CHECKPOINTS}; "
                        "'checkpoint_*_*.pt' adds the interval checkpoints)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--required-batch-size-multiple", type=int, default=1,
                   help="default 1: every sentence. fairseq-train validates with 8 and leaves out a last batch "
                        "that is not a multiple of it (5 of the study's 853 valid sentences); 8 reproduces its log")
    args = p.parse_args(argv)
    study.fairseq_style_logging()
    args.out = args.out or os.path.join(args.runs_dir, "source-use")
    if not glob.glob(os.path.join(args.bin, "dict.*.txt")):
        sys.exit(f"source_use: error: no binarized data in {args.bin}: run benchmarks/study.sh first, or pass --bin")
    runs = sorted(d for d in os.listdir(os.path.join(args.runs_dir, "checkpoints"))
                  if re.search(args.only, d)) if os.path.isdir(os.path.join(args.runs_dir, "checkpoints")) else []
    if not runs:
        sys.exit(f"source_use: error: no run folders under {args.runs_dir}/checkpoints"
                 f"{' matching ' + repr(args.only) if args.only else ''}: train them first (benchmarks/study.sh)")
    os.makedirs(args.out, exist_ok=True)
    rows, log = [], []
    with tempfile.TemporaryDirectory() as data:
        sizes = build_data(args.bin, data)
        for run in runs:
            run_log = os.path.join(args.runs_dir, f"{run}.log")
            if "done training" not in (study._read(run_log) or ""):
                print(f"| {run}: skipped, its log does not say it finished (a training run rewrites its checkpoints)",
                      flush=True)
                continue
            folder = os.path.join(args.runs_dir, "checkpoints", run)
            updates = {os.path.basename(f): None for pattern in args.checkpoints.split(",")
                       for f in glob.glob(os.path.join(folder, pattern.strip()))}
            updates = {n: checkpoint_update(run_log, n) for n in updates}  # each log read once per checkpoint
            names = sorted(updates, key=lambda n: (updates[n] or 0, n))
            batching = "" if args.required_batch_size_multiple == 1 else \
                f", in batches of a multiple of {args.required_batch_size_multiple}"
            for name in names:
                path = os.path.join(folder, name)
                cmd, found = validate(data, path, SPLITS, args.threads, args.required_batch_size_multiple)
                log.append("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd))
                update = updates[name]
                for split in SPLITS:
                    (_, own), (_, other) = found[split], found[split + MISMATCHED]
                    rows.append(f"| {run} | {name} ({'update ' + str(update) if update else 'update not in log'}) "
                                f"| {split} ({sizes[split]}{batching}) | {own:.2f} | {other:.2f} | {other - own:+.2f} |")
                    log.append(f"{run} {name} {split}: loss/nll own {found[split]}, mismatched "
                               f"{found[split + MISMATCHED]}")
                print(rows[-2] + "\n" + rows[-1], flush=True)
    table = ("| run | checkpoint | split (sentences) | nll, own source | nll, mismatched source "
             "| source use (bits per token) |\n|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
             "nll: fairseq's base-2 loss per target token without label smoothing, by fairseq-validate; mismatched: "
             "each sentence scored against the source of the sentence half the split away. "
             + study.summary_versions() + ".\n")
    study._write_atomic(os.path.join(args.out, "summary.md"), table)
    study._write_atomic(os.path.join(args.out, "source_use.log"), "\n".join(log) + "\n")
    print(table)


if __name__ == "__main__":
    main()
