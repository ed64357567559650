"""The H100 stall's fp16 hypothesis, tested on the CPU (issue 15, part 4): an fp16 audit of fp32 runs.

The H100 probe (benchmarks/gpu_probe.sh) trained 18-18 models of width 512 (ffn 2048, 8 heads) in fp16
with Adam, warmup 1000 to lr 1e-3 and 8,192 tokens per batch; only Admin lost loss scale (16 -> 4) while
it stalled. This runs the same models in fp32 with --admin-fp16-audit (fairseq_admin/fp16_audit.py):
at every update, whether fp16 would have overflowed, what it would have flushed to zero, and the loss
scale fairseq's scaler would have reached (init 128, window 2^14: the probe's fairseq defaults). The
8,192 tokens are 4 micro-batches of 2,048 (--update-freq 4; the audit reads the accumulated gradient
after each, as fp16 accumulates it), so that a CPU core holds them.

    python benchmarks/fp16_audit.py [--updates 400] [--only admin] [--quick]

Runs resume from their last checkpoint (every 10 updates, in work/bench/fp16-audit/); the audit files,
logs and summary go to benchmarks/results-fp16-audit/.
"""
import argparse
import csv
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import study  # noqa: E402  (benchmarks/study.py: its atomic write)

SHAPE = ["--encoder-embed-dim", "512", "--decoder-embed-dim", "512", "--encoder-ffn-embed-dim", "2048",
         "--decoder-ffn-embed-dim", "2048", "--encoder-attention-heads", "8", "--decoder-attention-heads", "8",
         "--encoder-layers", "18", "--decoder-layers", "18", "--share-all-embeddings"]
QUICK_SHAPE = ["--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
               "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
               "--encoder-layers", "2", "--decoder-layers", "2", "--share-all-embeddings"]
# the probe's: stock fairseq models (fairseq 0.12's init) for the baselines, Admin's default (reference) init
METHODS = {
    "admin": ["--task", "translation_admin", "--arch", "admin_transformer"],
    "preln": ["--task", "translation_admin", "--arch", "transformer", "--encoder-normalize-before",
              "--decoder-normalize-before"],
    "postln": ["--task", "translation_admin", "--arch", "transformer"],
}
SCHEDULE = ["--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
            "--warmup-updates", "1000", "--warmup-init-lr", "1e-7", "--criterion", "label_smoothed_cross_entropy",
            "--label-smoothing", "0.1", "--dropout", "0.1", "--max-tokens", "2048", "--update-freq", "4",
            "--fp16-init-scale", "128", "--fp16-scale-window", "16384", "--seed", "1"]


def command(args, method):
    save = os.path.join(args.work, method)
    return ["fairseq-train", args.bin, "--user-dir", os.path.join(ROOT, "fairseq_admin"), *METHODS[method],
            *(QUICK_SHAPE if args.quick else SHAPE), *SCHEDULE, "--admin-fp16-audit", "--max-update", str(args.updates),
            "--save-interval-updates", str(2 if args.quick else 10), "--keep-interval-updates", "1",
            "--no-epoch-checkpoints", "--disable-validation", "--save-dir", save, "--log-format", "simple",
            "--log-interval", "1" if args.quick else "10", "--num-workers", "0", "--cpu"]


def rows(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def summarize(args, methods):
    lines = ["| method | updates audited | overflows | first overflow (update: cause) | simulated scale: last, lowest "
             "| flushed to zero (mean, last) | max activation | train loss (last logged) |",
             "|---|---|---|---|---|---|---|---|"]
    curves = {}
    for method in methods:
        path = os.path.join(args.out, f"{method}.fp16_audit.tsv")
        if not os.path.exists(path):
            continue
        r = rows(path)
        if not r:
            continue
        over = [x for x in r if x["overflow"] == "1"]
        scales = [float(x["loss_scale"]) for x in r]
        under = [float(x["underflow"]) for x in r]
        log = open(os.path.join(args.out, f"{method}.log"), encoding="utf-8", errors="replace").read()
        losses = re.findall(r"train_inner .*? loss=([\d.]+)", log)
        first = f"{over[0]['update']}: {over[0]['cause']}" if over else "-"
        lines.append(f"| {method} | {len(r)} | {len(over)} | {first} | {scales[-1]:g}, {min(scales):g} "
                     f"| {sum(under) / len(under):.2e}, {under[-1]:.2e} | {max(float(x['max_activation']) for x in r):.1f} "
                     f"| {losses[-1] if losses else '-'} |")
        curves[method] = ([int(x["update"]) for x in r], scales)
    table = "\n".join(lines) + "\n"
    study._write_atomic(os.path.join(args.out, "summary.md"), table)
    print(table)
    if curves:
        fig, ax = study._plt().subplots(figsize=(6, 3.2))
        for method, (x, y) in curves.items():
            ax.step(x, y, where="post", label=method)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("update")
        ax.set_ylabel("simulated fp16 loss scale")
        ax.set_title("fp16 audit of fp32 runs, 18-18 width 512 (the H100 probe's setting)", fontsize=8)
        ax.legend(fontsize=7)
        study._save_png(fig, os.path.join(args.out, "loss_scale.png"), dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "work", "bench", "study-bin"))
    p.add_argument("--work", default=os.path.join(ROOT, "work", "bench", "fp16-audit"))
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results-fp16-audit"))
    p.add_argument("--updates", type=int, default=400)
    p.add_argument("--only", default="", help="a regex over method names")
    p.add_argument("--quick", action="store_true", help="2-2 width 32, 6 updates (the tests' mode)")
    p.add_argument("--summary", action="store_true", help="only the table and plot from the audit files")
    args = p.parse_args(argv)
    if args.quick and args.updates == p.get_default("updates"):
        args.updates = 6
    methods = [m for m in METHODS if re.search(args.only, m)]
    os.makedirs(args.out, exist_ok=True)
    if not args.summary:
        for method in methods:
            log = os.path.join(args.out, f"{method}.log")
            # a run that resumes continues its log; one that starts again (no checkpoint left) starts its log again
            resumes = os.path.exists(os.path.join(args.work, method, "checkpoint_last.pt"))
            with open(log, "a" if resumes else "w", encoding="utf-8") as f:
                f.write("$ " + " ".join(command(args, method)) + "\n")
                f.flush()
                code = subprocess.call(command(args, method), stdout=f, stderr=subprocess.STDOUT,
                                       env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"))
            print(f"| {method}: exit {code}", flush=True)
    for method in methods:  # the audit files so far (also of a run still going or stopped): into --out
        audit = os.path.join(args.work, method, "fp16_audit.tsv")
        if os.path.exists(audit):
            tmp = os.path.join(args.out, f"{method}.fp16_audit.tsv.tmp")
            shutil.copyfile(audit, tmp)
            os.replace(tmp, os.path.join(args.out, f"{method}.fp16_audit.tsv"))
    summarize(args, methods)


if __name__ == "__main__":
    sys.exit(main())
