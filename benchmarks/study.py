"""The evidence study: deep and shallow Post-LN, Pre-LN, Admin (profiled, logn), DeepNorm, on real data.

    python benchmarks/study.py [--bin DIR] [--out DIR] [--jobs 2] [--only REGEX] [--quick] [--ablation]
    (or: bash benchmarks/study.sh ...; it sets up .venv and the default data first)

Every run is fairseq-train with the same schedule (RAdam, inverse-sqrt warmup, label smoothing), then
fairseq-generate on the test split. A run is finished when its log says "done training" and its BLEU
file exists; a finished run is skipped on rerun only if its command is unchanged (the command is stored
next to its log), an interrupted one resumes from its checkpoint_last.pt. Runs are done in the
order of RUNS (most informative first), ``--jobs`` at a time, ``--threads`` each (default 1). At the end (and with
``--summary`` alone) the table and the valid-loss plots are written from whatever logs exist.

``--ablation`` first runs the stall ablation: the earlier H100 probe's optimiser, schedule and
initialisation (Adam, warmup 1000, fairseq 0.12's init) at this width in fp32, for the probe's 400
updates, then one factor changed at a time (reference init, ω fixed, RAdam) and Pre-LN in that regime.
"""
import argparse
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from parse_logs import parse  # noqa: E402

# the schedule: the recipes' optimizer (RAdam, betas 0.9/0.98, inverse-sqrt from 1e-7), scaled to the
# 27.5k-pair corpus: peak lr 1e-3 after 400 updates, 2048 tokens per batch, dropout 0.1
SCHEDULE = ["--optimizer", "radam", "--adam-betas", "(0.9,0.98)", "--clip-norm", "0", "--lr", "1e-3",
            "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "400", "--warmup-init-lr", "1e-7",
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--dropout", "0.1",
            "--attention-dropout", "0.1", "--activation-dropout", "0.1", "--max-tokens", "2048"]
WIDTH = ["--encoder-embed-dim", "128", "--decoder-embed-dim", "128", "--encoder-ffn-embed-dim", "512",
         "--decoder-ffn-embed-dim", "512", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
         "--share-all-embeddings"]
QUICK_WIDTH = ["--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
               "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
               "--share-all-embeddings"]
PRE_LN = ["--encoder-normalize-before", "--decoder-normalize-before"]

def depths(layers):
    """(encoder, decoder) layers of a run's depth: an int (both stacks) or a pair (asymmetric, e.g. 18-2)."""
    return (layers, layers) if isinstance(layers, int) else tuple(layers)


def depth_tag(layers):
    return "{}x{}".format(*depths(layers))


def depth_label(layers):
    return "{}-{}".format(*depths(layers))


#: method -> model flags; all with the reference initialisation unless named "(fairseq init)"
METHODS = {
    "postln": ["--arch", "refinit_transformer"],
    "preln": ["--arch", "refinit_transformer", *PRE_LN],
    "admin": ["--arch", "admin_transformer"],
    "admin-logn": ["--arch", "admin_transformer", "--admin-init", "logn"],
    "deepnorm": ["--arch", "admin_transformer", "--admin-init", "deepnorm"],
    "admin-f12init": ["--arch", "admin_transformer", "--weight-init", "fairseq"],
    "postln-f12init": ["--arch", "refinit_transformer", "--weight-init", "fairseq"],
    # the stall ablation (--ablation): the H100 probe's optimiser, schedule and initialisation (Adam,
    # warmup 1000, fairseq 0.12's init) at this width in fp32, then one factor changed at a time
    "admin-h100": ["--arch", "admin_transformer", "--weight-init", "fairseq"],
    "admin-h100-refinit": ["--arch", "admin_transformer"],
    "admin-h100-fixedomega": ["--arch", "admin_transformer", "--weight-init", "fairseq", "--admin-omega-fixed"],
    "admin-h100-radam": ["--arch", "admin_transformer", "--weight-init", "fairseq"],
    "preln-h100": ["--arch", "refinit_transformer", *PRE_LN, "--weight-init", "fairseq"],
    # the mechanism's targeted ablation (issue 15): the seed-1 profile with ω raised to logn's constant
    # where it is below it (benchmarks/mechanism.py --floor-profile): heavy bottom-layer dependency removed
    "admin-floorlogn": ["--arch", "admin_transformer", "--admin-profile",
                        os.path.join(ROOT, "benchmarks", "results-mechanism", "admin-floor-logn.profile")],
    # the other stabilisers (issue 17), each with its authors' initialisation (fairseq_admin/stabilizers.py)
    "b2t": ["--arch", "b2t_transformer"],
    "rezero": ["--arch", "rezero_transformer"],
    "rezero-postln": ["--arch", "rezero_postln_transformer"],
    "tfixup": ["--arch", "tfixup_transformer"],
    "dsinit": ["--arch", "dsinit_transformer"],
    # T-Fixup's initialisation with the study's warmup schedule: separates its initialisation from its
    # schedule (the 6-6 T-Fixup run leads by a wide margin and is the one run without warmup)
    "tfixup-warmup": ["--arch", "tfixup_transformer"],
    # the warmup question (issue 31): the long study's runs with a warmup of 1,600 updates (4x), same peak lr
    **{f"{m}-wu1600": ["--arch", "refinit_transformer", *(PRE_LN if m == "preln" else [])] if m in ("postln", "preln")
       else ["--arch", "admin_transformer", *(["--admin-init", "logn"] if m == "admin-logn" else [])]
       for m in ("postln", "preln", "admin", "admin-logn")},
}
#: the long warmup of the warmup question: 4x the study's 400 updates, the same peak learning rate
LONG_WARMUP = ["--warmup-updates", "1600"]
#: T-Fixup trains without warmup (its authors' schedule): the study's peak rate from update 1, decaying as
#: lr * sqrt(400 / (400 + update)), close to the others' lr * sqrt(400 / update) after their warmup
TFIXUP_SCHEDULE = ["--lr-scheduler", "inverse_sqrt_nowarmup", "--warmup-updates", "0", "--decay-period", "400"]
STABILIZERS = ("b2t", "rezero", "rezero-postln", "tfixup", "dsinit")
#: the H100 probe's schedule (benchmarks/gpu_probe.sh) but for its batch size and fp16
H100_SCHEDULE = ["--optimizer", "adam", "--warmup-updates", "1000"]
#: flags that must come after the common schedule (they override it)
OVERRIDES = {"admin-h100": H100_SCHEDULE, "admin-h100-refinit": H100_SCHEDULE,
             "admin-h100-fixedomega": H100_SCHEDULE, "admin-h100-radam": ["--warmup-updates", "1000"],
             "preln-h100": H100_SCHEDULE, "tfixup": TFIXUP_SCHEDULE,
             **{f"{m}-wu1600": LONG_WARMUP for m in ("postln", "preln", "admin", "admin-logn")}}
#: the stall ablation's runs stop at 400 updates, where the H100 probe stopped (inverse_sqrt does not
#: depend on --max-update, so their first 400 updates are those of a longer run)
ABLATION_METHODS = tuple(m for m in OVERRIDES if m != "tfixup" and not m.endswith("-wu1600"))
ABLATION_UPDATES = 400
LABELS = {
    "postln": "Post-LN", "preln": "Pre-LN", "admin": "Admin (profiled)", "admin-logn": "Admin (logn)",
    "deepnorm": "DeepNorm", "admin-f12init": "Admin, fairseq 0.12 init", "postln-f12init": "Post-LN, fairseq 0.12 init",
    "admin-h100": "Admin, H100 regime (Adam, warmup 1000, fairseq init)",
    "admin-h100-refinit": "Admin, H100 regime, reference init", "admin-h100-fixedomega": "Admin, H100 regime, ω fixed",
    "admin-h100-radam": "Admin, H100 regime, RAdam", "preln-h100": "Pre-LN, H100 regime",
    "admin-floorlogn": "Admin, profile with ω floored at logn's",
    "b2t": "B2T connection", "rezero": "ReZero", "rezero-postln": "ReZero + Post-LN", "tfixup": "T-Fixup (no warmup)",
    "tfixup-warmup": "T-Fixup init, the study's warmup",
    "dsinit": "DS-Init",
    "postln-wu1600": "Post-LN, warmup 1,600", "preln-wu1600": "Pre-LN, warmup 1,600",
    "admin-wu1600": "Admin (profiled), warmup 1,600", "admin-logn-wu1600": "Admin (logn), warmup 1,600",
}

#: (layers per stack, method, seed) in the order they run: the deep comparison and the shallow control
#: first, then the deep comparison's second seed, then the other methods and the initialisation ablation
RUNS = [(18, m, 1) for m in ("postln", "admin", "preln")] \
    + [(6, m, 1) for m in ("postln", "preln", "admin")] \
    + [(18, m, 2) for m in ("postln", "admin", "preln")] \
    + [(6, m, 1) for m in ("admin-logn", "deepnorm")] \
    + [(18, m, 1) for m in ("admin-f12init", "admin-logn", "deepnorm", "postln-f12init")] \
    + [(18, "admin-floorlogn", 1)] \
    + [(6, m, 1) for m in STABILIZERS] + [(18, m, 1) for m in STABILIZERS] \
    + [((18, 2), m, 1) for m in ("postln", "preln", "admin", "admin-logn", "deepnorm", *STABILIZERS)] \
    + [(6, "tfixup-warmup", 1)]
#: the other stabilisers' runs (issue 17): 6-6 and 18-18 of the new methods, then every method at 18-2
#: (a deep encoder, a shallow decoder), seed 1; part of RUNS, selected alone by --stabilizers
STABILIZER_RUNS = [r for r in RUNS if r[1] in (*STABILIZERS, "tfixup-warmup") or depths(r[0]) == (18, 2)]
#: with --ablation: what might explain the H100 stall, 18-18, seed 1 (run before the rest of RUNS)
ABLATION_RUNS = [(18, m, 1) for m in ABLATION_METHODS]
QUICK_RUNS = [(2, m, 1) for m in ("postln", "preln", "admin", "deepnorm")]
QUICK_STABILIZER_RUNS = [((2, 1), m, 1) for m in ("b2t", "tfixup")]
#: with --long (issues 15 and 31, the late stage): 4,000 updates, the deep comparison first (Admin and
#: Pre-LN, seeds 1 and 2), then one seed of the other methods; then the warmup question (warmup 1,600),
#: second seeds of the analytic winners, T-Fixup and B2T; then third seeds if the CPU allows
LONG_RUNS = [(18, "admin", 1), (18, "preln", 1), (18, "admin", 2), (18, "preln", 2),
             (18, "admin-logn", 1), (18, "deepnorm", 1), (18, "postln", 1),
             (18, "admin-wu1600", 1), (18, "preln-wu1600", 1), (18, "postln-wu1600", 1), (18, "admin-logn-wu1600", 1),
             (18, "admin-logn", 2), (18, "deepnorm", 2), (18, "tfixup", 1), (18, "b2t", 1),
             (18, "admin", 3), (18, "preln", 3)]
LONG_UPDATES = 4000
#: long runs save (and so validate: fairseq validates at every interval save) every 100 updates, as the
#: 800-update runs did, and keep the last 5 interval checkpoints (3,600-4,000): the reference averages
#: the last tenth of its training
LONG_SAVE_EVERY, LONG_AVERAGE = 100, 5
LONG_LOG_EVERY = 50  # ω and branch dependency β² every 50 updates (and at update 0)
QUICK_LONG_RUNS = [(2, m, 1) for m in ("admin", "preln")]


def run_name(layers, method, seed):
    return f"{depth_tag(layers)}-{method}-seed{seed}"


def train_command(bin_dir, out, layers, method, seed, updates, quick, long=False):
    save = os.path.join(out, "checkpoints", run_name(layers, method, seed))
    valid_every = 3 if quick else 100
    log_every = 2 if quick else (LONG_LOG_EVERY if long else 50)
    # long: keep the last LONG_AVERAGE interval checkpoints (to average) and log β² (issue 15)
    extra = ["--keep-interval-updates", str(LONG_AVERAGE), "--admin-log-dependency", str(log_every)] if long else []
    return ["fairseq-train", bin_dir, "--user-dir", os.path.join(ROOT, "fairseq_admin"), "--task", "translation_admin",
            *METHODS[method], "--encoder-layers", str(depths(layers)[0]), "--decoder-layers", str(depths(layers)[1]),
            *(QUICK_WIDTH if quick else WIDTH), *SCHEDULE, *(["--warmup-updates", "3"] if quick else []),
            "--seed", str(seed), "--max-update", str(updates),
            "--validate-interval-updates", str(valid_every), "--validate-interval", "1000",
            "--save-interval-updates", str(valid_every), "--keep-interval-updates", "1", "--no-epoch-checkpoints",
            "--save-dir", save, "--admin-log-omega", str(log_every), "--log-format", "simple",
            "--log-interval", str(log_every), "--num-workers", "0", "--cpu", *OVERRIDES.get(method, []), *extra]


def generate_command(bin_dir, out, layers, method, seed, quick, checkpoint="checkpoint_last.pt", long=False):
    ckpt = os.path.join(out, "checkpoints", run_name(layers, method, seed), checkpoint)
    # long: every test sentence (fairseq 0.12 drops a last batch whose size is not a multiple of 8)
    every = ["--required-batch-size-multiple", "1"] if long else []
    return ["fairseq-generate", bin_dir, "--user-dir", os.path.join(ROOT, "fairseq_admin"), "--path", ckpt,
            "--gen-subset", "test", "--beam", "5", "--lenpen", "1", "--batch-size", "128", "--remove-bpe",
            "--max-len-a", "1.2", "--max-len-b", "10", "--cpu", "--quiet", *every]


def average_command(out, layers, method, seed):
    save = os.path.join(out, "checkpoints", run_name(layers, method, seed))
    return ["fairseq-admin", "average", save, "--updates", "--last", str(LONG_AVERAGE),
            "--output", os.path.join(save, "averaged.pt")]


def evaluations(args, layers, method, seed):
    """[(BLEU file suffix, commands before generate, generate command)] of one run."""
    if not args.long:
        return [("bleu.txt", [], generate_command(args.bin, args.out, layers, method, seed, args.quick))]
    gen = lambda ckpt: generate_command(args.bin, args.out, layers, method, seed, args.quick, ckpt, long=True)  # noqa: E731
    return [("best.bleu.txt", [], gen("checkpoint_best.pt")),
            ("avg.bleu.txt", [average_command(args.out, layers, method, seed)], gen("averaged.pt"))]


def cpu_line(threads):
    """The processor a run ran on: the same command and versions round differently on another CPU's
    vector instructions (RESULTS.md, "Same command, another CPU"), so each log records it."""
    model, flags = "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = [x for x in value.split() if x.startswith(("avx", "amx", "fma"))]
    except OSError:
        pass
    return f"cpu: {model}; {' '.join(flags) or 'vector instructions unknown'}; {threads} thread(s)"


def _run_logged(cmd, log, append, threads=1):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    with open(log, "a" if append else "w") as f:
        f.write(f"# {shlex.join(cmd)}\n# {summary_versions(prefix=False)}\n# {cpu_line(threads)}\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode


def canonical(commands):
    """A run's commands without what may differ between checkouts: the checkout's path and the data
    folder's name (the data themselves are checked by their fingerprint, see check_data)."""
    if commands is None:
        return None
    commands = re.sub(r"(fairseq-(?:train|generate)) \S+", r"\1 BIN", commands)
    return commands.replace(ROOT + os.sep, "")


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_atomic(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


#: resume states are committed in parts below this size (hosting services refuse files over 100 MB)
PART_BYTES = 45 * 1024 * 1024


def _sha256(path):
    from fairseq_admin.files import file_sha256  # the project's one file hash (needs the set-up's venv)
    return file_sha256(path)


def _resume_files(save, updates):
    """What a run needs to resume elsewhere: checkpoint_last.pt, checkpoint_best.pt and the interval
    checkpoints inside the averaging window."""
    names = ["checkpoint_last.pt", "checkpoint_best.pt"]
    window = updates - LONG_AVERAGE * LONG_SAVE_EVERY
    for f in sorted(os.listdir(save)):
        m = re.fullmatch(r"checkpoint_\d+_(\d+)\.pt", f)
        if m and int(m.group(1)) > window:
            names.append(f)
    return [n for n in names if os.path.exists(os.path.join(save, n))]


#: a second place for resume states, outside the work tree (a machine handed back as it was keeps it,
#: where a fresh checkout of the repository has no ignored files): STUDY_STASH_ROOT/<results folder>/NAME
STASH_ROOT = os.environ.get("STUDY_STASH_ROOT", "/var/tmp/fairseq-admin-study")


def stash_dirs(args):
    """Where resume states are looked for: OUT/resume, then STASH_ROOT/<basename of OUT>."""
    return [os.path.join(args.out, "resume"), os.path.join(STASH_ROOT, os.path.basename(os.path.abspath(args.out)))]


def stash(args, runs):
    """Copy each unfinished run's checkpoints into --stash-dir/NAME/ (default OUT/resume) in parts
    (identical files once), with a manifest: committed, or kept outside the work tree (STASH_ROOT), they
    let a checkout without checkpoints resume the run where this machine stopped."""
    import json
    for layers, method, seed in runs:
        name = run_name(layers, method, seed)
        save = os.path.join(args.out, "checkpoints", name)
        if "done training" in (_read(os.path.join(args.out, f"{name}.log")) or "") or not os.path.isdir(save):
            continue
        dest = os.path.join(args.stash_dir or stash_dirs(args)[0], name)
        subprocess.run(["rm", "-rf", dest])
        os.makedirs(dest)
        manifest, blobs = {}, {}
        for f in _resume_files(save, args.updates):
            digest = _sha256(os.path.join(save, f))
            manifest[f] = digest
            if digest in blobs:
                continue
            blobs[digest] = True
            with open(os.path.join(save, f), "rb") as src:
                for i, block in enumerate(iter(lambda: src.read(PART_BYTES), b"")):
                    with open(os.path.join(dest, f"{digest[:16]}.part{i:02d}"), "wb") as out:
                        out.write(block)
        _write_atomic(os.path.join(dest, "manifest.json"), json.dumps(manifest, indent=1) + "\n")
        print(f"| stashed {name}: {', '.join(manifest)} in {dest}")


def restore(args, name):
    """Rebuild a run's checkpoints from a stash (stash_dirs) when this checkout has none (a fresh clone);
    returns where they came from, or None."""
    import json
    save = os.path.join(args.out, "checkpoints", name)
    if os.path.exists(os.path.join(save, "checkpoint_last.pt")):
        return None
    found = [d for d in stash_dirs(args) if os.path.exists(os.path.join(d, name, "manifest.json"))]
    if not found:
        return None
    src = os.path.join(found[0], name)
    manifest = _read(os.path.join(src, "manifest.json"))
    os.makedirs(save, exist_ok=True)
    for f, digest in json.loads(manifest).items():
        parts = sorted(p for p in os.listdir(src) if p.startswith(digest[:16] + ".part"))
        tmp = os.path.join(save, f + ".tmp")
        with open(tmp, "wb") as out:
            for part in parts:
                with open(os.path.join(src, part), "rb") as block:
                    out.write(block.read())
        if _sha256(tmp) != digest:
            os.remove(tmp)
            sys.exit(f"study: error: {src} is damaged ({f} does not match its sha256): delete it to restart {name}")
        os.replace(tmp, os.path.join(save, f))
    return src


def training_finished(rc, text, log=None):
    """Whether a fairseq-train that exited with ``rc`` after writing ``text`` to its log finished.

    Seen once in CI and once here, not in 12 more runs of the same quick command: fairseq-train logs
    "done training" and then aborts at interpreter exit ("terminate called without an active exception",
    SIGABRT). The likely cause: fairseq 0.12 prefetches batches in a daemon thread (iterators.BufferedIterator),
    which a run stopping at --max-update mid-epoch leaves inside a torch op; torch re-taking the GIL there
    while the interpreter finalizes ends the thread through a noexcept frame, hence std::terminate. fairseq
    logs "done training" only after the last checkpoint is saved, so that abort loses nothing: it is
    accepted, and noted in the log (``log``). Any other failure is a failure."""
    if "done training" not in text:
        return False
    if rc == 0:
        return True
    if rc in (-signal.SIGABRT, 128 + signal.SIGABRT):
        if log:
            with open(log, "a") as f:
                f.write(f"# study: fairseq-train aborted at exit (exit {rc}) after \"done training\": its checkpoints "
                        "were complete, the run is kept\n")
        print(f"| warning: {os.path.basename(log or 'fairseq-train')}: aborted at exit (exit {rc}) after "
              "\"done training\"; its checkpoints are complete, kept", flush=True)
        return True
    return False


def do_run(args, layers, method, seed):
    """Train (or resume) and decode one run; skip it when finished with the same commands."""
    name = run_name(layers, method, seed)
    log, stamp = (os.path.join(args.out, f"{name}.{ext}") for ext in ("log", "cmd"))
    updates = args.ablation_updates if method in ABLATION_METHODS else args.updates
    train = train_command(args.bin, args.out, layers, method, seed, updates, args.quick, args.long)
    evals = [(os.path.join(args.out, f"{name}.{suffix}"), before, gen)
             for suffix, before, gen in evaluations(args, layers, method, seed)]
    commands = "".join(f"{shlex.join(c)}\n" for c in [train] + [c for _, before, gen in evals for c in before + [gen]])
    finished = "done training" in (_read(log) or "") and all("BLEU" in (_read(b) or "") for b, _, _ in evals)
    same = canonical(_read(stamp)) == canonical(commands)
    if same and finished:
        return f"{name}: finished earlier, skipped"
    if not same:  # other settings: start from scratch, never mix two configurations in one run
        subprocess.run(["rm", "-rf", os.path.join(args.out, "checkpoints", name), log, *(b for b, _, _ in evals)])
        _write_atomic(stamp, commands)
    start = time.time()
    if "done training" not in (_read(log) or ""):
        restored = restore(args, name) if same else None
        if restored:
            print(f"| {name}: resuming from the committed state in {restored}", flush=True)
        # a log continues only with the checkpoint it was written with: a run that starts again from
        # scratch (its checkpoints lost, say on a fresh machine) starts its log again too
        resumes = same and os.path.exists(os.path.join(args.out, "checkpoints", name, "checkpoint_last.pt"))
        rc = _run_logged(train, log, append=resumes, threads=args.threads)
        if not training_finished(rc, _read(log) or "", log):
            return f"{name}: training FAILED (exit {rc}), see {log}"
    for bleu, before, gen in evals:
        if "BLEU" in (_read(bleu) or ""):
            continue
        tmp = f"{bleu}.part"
        for i, cmd in enumerate(before + [gen]):
            rc = _run_logged(cmd, tmp, append=i > 0, threads=args.threads)
            if rc != 0:
                return f"{name}: {os.path.basename(cmd[0])} FAILED (exit {rc}), see {tmp}"
        os.replace(tmp, bleu)
    return f"{name}: done in {time.time() - start:.0f} s"


def bleu_of(path):
    m = re.search(r"BLEU4? = ([\d.]+)", _read(path) or "")
    return float(m.group(1)) if m else None


def _or_dash(value):
    """A BLEU score as its file prints it (two decimals: 0.00, not 0.0), or "-" where there is none."""
    return "-" if value is None else f"{value:.2f}"


def omega_of(path):
    """Last logged (omega_enc_mean, min, max, omega_dec_mean, min, max) of a run, or None."""
    last = None
    for line in (_read(path) or "").splitlines():
        m = re.search(r"omega_enc_mean=([\d.]+), omega_enc_min=([\d.-]+), omega_enc_max=([\d.]+), "
                      r"omega_dec_mean=([\d.]+), omega_dec_min=([\d.-]+), omega_dec_max=([\d.]+)", line)
        if m:
            last = tuple(float(g) for g in m.groups())
    return last


def omega_curve(path):
    """[(update, ω enc mean, ω dec mean)] from the train_inner lines of a run's log."""
    out = []
    for line in (_read(path) or "").splitlines():
        m = re.search(r"omega_enc_mean=([\d.]+),.*omega_dec_mean=([\d.]+),.*num_updates=(\d+)", line)
        if m:
            out.append((int(m.group(3)), float(m.group(1)), float(m.group(2))))
    return out


def train_loss_at_end(path):
    last = None
    for line in (_read(path) or "").splitlines():
        m = re.search(r"train_inner \| .*? loss=([\d.]+|nan|inf),", line)
        if m:
            last = float(m.group(1))
    return last


def profile_seconds(path):
    m = re.search(r"seed \d+, ([\d.]+) s including loading the batch", _read(path) or "")
    return float(m.group(1)) if m else None


def seconds_per_update(path):
    m = re.findall(r"train_inner .*ups=([\d.]+)", _read(path) or "")
    ups = [float(x) for x in m[1:]] or [float(x) for x in m]
    return len(ups) / sum(1 / u for u in ups if u > 0) if ups else None


def summary_versions(prefix=True):
    """The versions line of this environment (each run's log starts with the one it ran with)."""
    try:
        from fairseq_admin.profile_file import versions_line
        return f"Summary written with {versions_line()}; each log's second line names the versions of its run" \
            if prefix else versions_line()
    except Exception as e:  # noqa: BLE001 -- the table is still worth writing
        return f"versions: unknown ({e})"


def summarize(args, runs):
    rows, curves = [], {}
    for layers, method, seed in runs:
        name = run_name(layers, method, seed)
        log = os.path.join(args.out, f"{name}.log")
        if _read(log) is None:
            continue
        r = parse(log)
        done = "done training" in _read(log)
        valid = r["valid"]
        if not valid:
            continue  # started, nothing measured yet
        regime = "h100" if method in ABLATION_METHODS else "main"
        curves.setdefault((layers, regime), {})[(method, seed)] = valid
        last = valid[-1] if valid else (0, float("nan"))
        best = min((v for _, v in valid), default=float("nan"))
        om = omega_of(log)
        ups = seconds_per_update(log)
        prof = profile_seconds(log)
        rows.append(
            f"| {depth_label(layers)} | {LABELS[method]} | {seed} | {last[0]}{'' if done else ' (unfinished)'} "
            f"| {last[1]:.2f} | {best:.2f} | {train_loss_at_end(log) or float('nan'):.2f} "
            f"| {_or_dash(bleu_of(os.path.join(args.out, f'{name}.bleu.txt')))} "
            f"| {'-' if om is None else f'{om[0]:.2f} [{om[1]:.2f}, {om[2]:.2f}] / {om[3]:.2f} [{om[4]:.2f}, {om[5]:.2f}]'} "
            f"| {'-' if ups is None else f'{1 / ups:.2f}'} | {'-' if prof is None else f'{prof:.2f}'} |")
    header = ("| depth | method | seed | updates | valid loss (last) | best valid | train loss (last) | test BLEU "
              "| ω enc mean [min, max] / dec (last logged) | s per update | profiling s |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    table = header + "\n" + "\n".join(rows) + "\n\n" + summary_versions() + "\n"
    _write_atomic(os.path.join(args.out, "summary.md"), table)
    print(table)
    plot_curves(args.out, curves)
    plot_omegas(args.out, [(run_name(*r), omega_curve(os.path.join(args.out, f"{run_name(*r)}.log"))) for r in runs])
    return table


def beta2_curve(path):
    """[(update measured at, {sublayer metric: β²})] from a log's train_inner lines (--admin-log-dependency)."""
    out = []
    for line in (_read(path) or "").splitlines():
        if "train_inner" not in line or "beta2_update=" not in line:
            continue
        values = dict((k, float(v)) for k, v in re.findall(r"beta2_(\w+?)=([-\d.e]+|nan)", line))
        out.append((int(values.pop("update")), values))
    # a resumed run logs again the updates after its last checkpoint: keep the last of each
    return sorted(dict(out).items())


def run_machine(text):
    """The processors and thread counts a run's log records (one header per start; logs from before
    session 8 have none), shortened for a table: "Intel(R) Xeon(R) Processor, AVX-512 + AMX, 2 threads"."""
    seen = []
    for model, flags, threads in re.findall(r"^# cpu: (.*?); (.*?); (\d+) thread\(s\)$", text or "", re.M):
        flags = set(flags.split())
        isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
        isa += " + AMX" if "amx_tile" in flags else ""
        entry = f"{model}, {isa}, {threads} thread{'' if threads == '1' else 's'}"
        if entry not in seen:
            seen.append(entry)
    return "; ".join(seen) or "not recorded (a log from before session 8)"


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f} (1 seed)"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.2f} ± {std:.2f} ({len(values)} seeds)"


def first_updates_check(args, layers, method, seed, valid):
    """Largest |valid loss difference| against the 800-update study's run over the updates both have,
    or None when that run is not there."""
    short = parse_valid(os.path.join(ROOT, "benchmarks", "results-study", f"{run_name(layers, method, seed)}.log"))
    common = sorted(set(short) & set(dict(valid)))
    if not common:
        return None
    long = dict(valid)
    return max(abs(short[u] - long[u]) for u in common), common[-1]


def epoch_train_losses(path):
    """{update at an epoch's end: the epoch's mean training loss} (label-smoothed, dropout on, like the valid
    loss but for dropout) from the "| train | epoch" lines. A resumed run logs its epoch again, averaged over the
    updates since the restart; the last line of each update is kept."""
    out = {}
    for line in (_read(path) or "").splitlines():
        m = re.search(r"\| train \| epoch \d+ \|.*?\| loss ([\d.]+|nan|inf) \|.*?\| num_updates (\d+)", line)
        if m:
            out[int(m.group(2))] = float(m.group(1))
    return out


GAP_AT = (1000, 2000, 3000, 4000)


def gap_row(label, train, valid, at=GAP_AT, near=(250, 100)):
    """A table row: at each update of `at`, the training loss of the epoch ending nearest it, the valid loss at
    the validation nearest that epoch's end, and valid − train; "-" where none is within `near` updates."""
    cells = []
    for target in at:
        if not train or not valid:
            cells.append("-")
            continue
        end = min(train, key=lambda u: abs(u - target))
        check = min(valid, key=lambda u: abs(u - end))
        if abs(end - target) > near[0] or abs(check - end) > near[1]:
            cells.append("-")
            continue
        cells.append(f"{train[end]:.2f} / {valid[check]:.2f} ({valid[check] - train[end]:+.2f})")
    return f"| {label} | " + " | ".join(cells) + " |"


def parse_valid(path):
    return dict(parse(path)["valid"]) if _read(path) is not None else {}


def summarize_long(args, runs):
    rows, by_method, curves, checks, gaps = [], {}, {}, [], []
    for layers, method, seed in runs:
        name = run_name(layers, method, seed)
        log = os.path.join(args.out, f"{name}.log")
        text = _read(log)
        measured = parse(log)["valid"] if text is not None else []
        if not measured:
            continue
        valid = sorted(dict(measured).items())  # a resumed run may log an update twice
        curves[(method, seed)] = valid
        done = "done training" in text
        best_update, best = min(valid, key=lambda uv: uv[1])
        bleu_best = bleu_of(os.path.join(args.out, f"{name}.best.bleu.txt"))
        bleu_avg = bleu_of(os.path.join(args.out, f"{name}.avg.bleu.txt"))
        # an unfinished run's best so far is no end point: only finished runs enter the means
        by_method.setdefault((layers, method), []).append((seed, best if done else None, valid[-1][1] if done else None,
                                                           bleu_best, bleu_avg))
        rows.append(f"| {depth_label(layers)} | {LABELS[method]} | {seed} | {valid[-1][0]}{'' if done else ' (unfinished)'} "
                    f"| {valid[-1][1]:.2f} | {best:.2f} (update {best_update}) | {_or_dash(bleu_best)} | {_or_dash(bleu_avg)} "
                    f"| {run_machine(text)} |")
        gaps.append(gap_row(f"{depth_label(layers)} {LABELS[method]}, seed {seed}", epoch_train_losses(log), dict(valid),
                            [round(args.updates * f / 4) for f in (1, 2, 3, 4)],
                            (max(1, args.updates // 16), 3 if args.quick else 100)))
        check = first_updates_check(args, layers, method, seed, valid)
        if check is not None:
            checks.append(f"| {name} | {check[1]} | {check[0]:.4f} |")
    table = ("| depth | method | seed | updates | valid loss (last) | best valid | test BLEU, best checkpoint "
             f"| test BLEU, average of the last {LONG_AVERAGE} | processor, threads |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    means = ["| depth | method | best valid (finished runs) | final valid (finished runs) | BLEU best checkpoint | BLEU averaged |",
             "|---|---|---|---|---|---|"]
    for (layers, method), items in by_method.items():
        means.append(f"| {depth_label(layers)} | {LABELS[method]} | {_mean_std([i[1] for i in items])} "
                     f"| {_mean_std([i[2] for i in items])} | {_mean_std([i[3] for i in items])} "
                     f"| {_mean_std([i[4] for i in items])} |")
    text = (table + "\nMean ± sample standard deviation (n − 1) over seeds (finished evaluations only; seeds run on other "
            "processors round differently, see the last column above):\n\n" + "\n".join(means) + "\n"
            + "\nThe first updates against the 800-update study (benchmarks/results-study), valid loss:\n\n"
            + "| run | updates compared (every 100 up to) | largest abs difference |\n|---|---|---|\n"
            + "\n".join(checks) + "\n\nTraining against valid loss (train: the mean over the epoch ending nearest the "
            "update, label-smoothed with dropout; valid: label-smoothed, at the validation nearest that epoch's end; "
            "in brackets valid − train):\n\n| run | " + " | ".join(f"≈ {round(args.updates * f / 4):,}" for f in (1, 2, 3, 4))
            + " |\n|---|---|---|---|---|\n" + "\n".join(gaps) + "\n\n" + summary_versions() + "\n")
    _write_atomic(os.path.join(args.out, "summary.md"), text)
    print(text)
    if curves:
        plot_long(args.out, curves)
    betas = {}
    for layers, method, seed in runs:
        name = run_name(layers, method, seed)
        beta = beta2_curve(os.path.join(args.out, f"{name}.log"))
        if beta:
            plot_beta2_heatmap(os.path.join(args.out, f"beta2_{name}.png"), name, beta)
            betas[(method, seed)] = beta
    if betas:
        plot_dependency_long(args.out, betas)
    plot_omegas(args.out, [(run_name(*r), omega_curve(os.path.join(args.out, f"{run_name(*r)}.log"))) for r in runs])
    return text


def fairseq_style_logging():
    """The root logger as fairseq's CLIs set it up (their format, INFO), before anything imports fairseq:
    one of fairseq's model modules (models/wav2vec/wav2vec2_classification.py) calls
    logging.basicConfig(level=DEBUG) on import, which would otherwise set the root logger of these
    scripts, and hydra's and matplotlib's debug lines would reach the output."""
    import logging
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", level=logging.INFO, stream=sys.stderr, force=True)


def _plt():
    import logging
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font search, whatever the root level
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save_png(fig, path, dpi=110):
    """Lay out one figure, write it atomically (a temporary file renamed into place) and close it."""
    fig.tight_layout()
    fig.savefig(f"{path}.tmp.png", dpi=dpi)
    os.replace(f"{path}.tmp.png", path)
    _plt().close(fig)


def plot_long(out, curves):
    plt = _plt()
    colors = _colors(plt)
    styles = {1: "-", 2: "--", 3: ":"}
    fig, ax = plt.subplots(figsize=(8, 5))
    for (method, seed), valid in sorted(curves.items()):
        ax.plot(*zip(*valid), color=colors[method], linestyle=styles.get(seed, "-."), label=f"{LABELS[method]} (seed {seed})")
    ax.set_xlabel("update")
    ax.set_ylabel("valid loss (label-smoothed CE, base 2)")
    ax.set_ylim(top=min(10.5, ax.get_ylim()[1]))
    ax.set_title("18-18, width 128, RAdam lr 1e-3 warmup 400, bundled De-En sample: the late stage", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save_png(fig, os.path.join(out, "valid_loss_long.png"))


def stack_means(values):
    """(encoder mean β², decoder self-attention, cross-attention and FFN means) of one measurement."""
    def mean(pattern):
        xs = [v for k, v in values.items() if re.fullmatch(pattern, k)]
        return sum(xs) / len(xs) if xs else float("nan")
    return mean(r"enc_\d+_\w+"), mean(r"dec_\d+_attn"), mean(r"dec_\d+_cross"), mean(r"dec_\d+_ffn")


def plot_dependency_long(out, betas):
    """Per run, over training: the encoder's mean β² and the decoder cross-attention's (how much the decoder's
    residual stream takes from the source), log scale."""
    plt = _plt()
    colors = _colors(plt)
    styles = {1: "-", 2: "--", 3: ":"}
    fig, (enc, cross) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for (method, seed), beta in sorted(betas.items()):
        updates = [u for u, _ in beta]
        means = [stack_means(v) for _, v in beta]
        style = dict(color=colors[method], linestyle=styles.get(seed, "-."), label=f"{LABELS[method]} (seed {seed})")
        enc.plot(updates, [m[0] for m in means], **style)
        cross.plot(updates, [m[2] for m in means], **style)
    for ax, title in ((enc, "encoder, mean over its sublayers"), (cross, "decoder cross-attention, mean over layers")):
        ax.set_yscale("log")
        ax.set_xlabel("update")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    enc.set_ylabel("β² = Var(F) / Var(ω·r + F)")
    cross.legend(fontsize=7)
    fig.suptitle("18-18 long runs: branch dependency over training (logged every 50 updates)", fontsize=9)
    _save_png(fig, os.path.join(out, "dependency_long.png"))


def plot_beta2_heatmap(path, name, beta):
    """Sublayer (rows, forward order, encoder then decoder) x update (columns) heatmap of β²."""
    plt = _plt()
    names = [k for k in beta[0][1] if not k.endswith("_mean")]
    updates = [u for u, _ in beta]
    grid = [[values.get(k, float("nan")) for _, values in beta] for k in names]
    fig, ax = plt.subplots(figsize=(9, 10))
    from matplotlib.colors import LogNorm
    # log scale, one range for every run: β² spans 1e-3 (DeepNorm) to about 0.5 (Post-LN's first sublayers)
    im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", norm=LogNorm(vmin=1e-3, vmax=1))
    ax.set_yticks(range(0, len(names), 3))
    ax.set_yticklabels([names[i] for i in range(0, len(names), 3)], fontsize=6)
    step = max(1, len(updates) // 10)
    ax.set_xticks(range(0, len(updates), step))
    ax.set_xticklabels([updates[i] for i in range(0, len(updates), step)], fontsize=7)
    ax.set_xlabel("update (β² measured on that update's batch)")
    ax.set_title(f"{name}: branch dependency β² = Var(F) / Var(ω·r + F)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    _save_png(fig, path, dpi=100)


def _colors(plt):
    """One colour per method (tab20: up to 20 distinct; the study has more methods than C0-C9)."""
    cmap = plt.get_cmap("tab20")
    return {m: cmap(i % 20) for i, m in enumerate(METHODS)}


def plot_curves(out, curves):
    try:
        plt = _plt()
    except ImportError:
        print("matplotlib missing: no plots")
        return
    colors = _colors(plt)
    titles = {"main": "RAdam lr 1e-3 warmup 400",
              "h100": "the H100 probe's Adam, warmup 1000 (fp32)"}
    for (layers, regime), runs in curves.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for (method, seed), valid in sorted(runs.items()):
            if valid:
                ax.plot(*zip(*valid), color=colors[method], linestyle="-" if seed == 1 else "--",
                        marker="." if seed == 1 else "x", label=f"{LABELS[method]} (seed {seed})")
        ax.set_xlabel("update")
        ax.set_ylabel("valid loss (label-smoothed CE, base 2)")
        ax.set_title(f"{depth_label(layers)}, width 128, {titles[regime]}, bundled De-En sample", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        _save_png(fig, os.path.join(out, f"valid_loss_{depth_tag(layers)}{'' if regime == 'main' else '_' + regime}.png"))


def plot_omegas(out, curves):
    """ω's mean per stack over training, one line per run that has ω."""
    curves = [(name, c) for name, c in curves if c]
    if not curves:
        return
    plt = _plt()

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for i, (name, c) in enumerate(curves):
        for ax, col in zip(axes, (1, 2)):
            ax.plot([u for u, *_ in c], [row[col] for row in c], color=f"C{i}", label=name)
    for ax, stack in zip(axes, ("encoder", "decoder")):
        ax.set_title(f"mean ω of the {stack} over training")
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _save_png(fig, os.path.join(out, "omega_mean.png"))


def data_fingerprint(folder):
    """sha256 over the binarized data (dictionaries, .bin and .idx files) of a folder."""
    import hashlib
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.startswith("dict.") or name.endswith((".bin", ".idx")):
            h.update(name.encode())
            with open(os.path.join(folder, name), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def check_data(args):
    """Runs in one results folder must share their data: record its fingerprint, refuse another."""
    path = os.path.join(args.out, "data.sha256")
    have = data_fingerprint(args.bin)
    recorded = (_read(path) or "").split()
    if recorded and recorded[0] != have:
        sys.exit(f"study: error: the data in {args.bin} differ from those of the runs in {args.out} "
                 f"(sha256 {have[:12]} vs {recorded[0][:12]}): pass another --out, or delete {args.out} to redo them")
    if not recorded:
        _write_atomic(path, f"{have}  {args.bin}\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "work", "bench", "study-bin"), help="binarized data folder")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results-study"))
    p.add_argument("--jobs", type=int, default=2, help="runs side by side")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per run (default 1; `--jobs 1 --threads 2` gives one run both cores). Each log "
                        "records its threads and processor; like another CPU, another thread count may round "
                        "differently, and a finished run is not redone for it")
    p.add_argument("--updates", type=int, default=None, help="updates per run (default 800; quick: 12)")
    p.add_argument("--only", default="", help="a regex: only runs whose name matches")
    p.add_argument("--quick", action="store_true", help="2-2 layers, width 32, warmup 3, 12 updates (the tests' mode)")
    p.add_argument("--summary", action="store_true", help="only write the table and plots from the logs")
    p.add_argument("--ablation", action="store_true", help="also the stall ablations (ω fixed, warmup 2000)")
    p.add_argument("--stash", action="store_true",
                   help="only copy each unfinished run's checkpoints into OUT/resume/ (commit them: a fresh clone "
                        "then resumes those runs instead of starting again)")
    p.add_argument("--stash-dir", help=f"with --stash: where to (default OUT/resume; resumes also look in "
                                       f"{STASH_ROOT}/<OUT's name>, or $STUDY_STASH_ROOT)")
    p.add_argument("--stabilizers", action="store_true",
                   help="only the other stabilisers' runs (B2T, ReZero, T-Fixup, DS-Init at 6-6 and 18-18, every method "
                        "at 18-2); they are part of the default list too")
    p.add_argument("--long", action="store_true",
                   help=f"the late stage: {LONG_UPDATES} updates, best and averaged checkpoints decoded, β² logged "
                        "(results in benchmarks/results-long unless --out)")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        p.error("--jobs and --threads take a whole number of at least 1")
    fairseq_style_logging()
    if args.long and args.out == p.get_default("out"):
        args.out = os.path.join(ROOT, "benchmarks", "results-long")
    args.updates = args.updates or (15 if args.quick and args.long else 12 if args.quick
                                    else LONG_UPDATES if args.long else 800)
    args.ablation_updates = min(args.updates, ABLATION_UPDATES)
    if args.long:
        runs = QUICK_LONG_RUNS if args.quick else LONG_RUNS
    else:
        if args.stabilizers:
            runs = QUICK_STABILIZER_RUNS if args.quick else STABILIZER_RUNS
        else:
            runs = QUICK_RUNS if args.quick else (ABLATION_RUNS if args.ablation else []) + RUNS
    runs = [r for r in runs if re.search(args.only, run_name(*r))]
    os.makedirs(args.out, exist_ok=True)
    if args.stash:
        return stash(args, runs)
    if not args.summary:
        if not os.path.exists(os.path.join(args.bin, "dict.de.txt")):
            sys.exit(f"study: error: no binarized data in {args.bin}: run benchmarks/study.sh, or pass --bin")
        check_data(args)
        for leftover in os.listdir(args.out):  # parts of interrupted writes
            if leftover.endswith((".tmp", ".part")):
                os.remove(os.path.join(args.out, leftover))
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for message in pool.map(lambda r: do_run(args, *r), runs):
                print(f"| {message}", flush=True)
    if args.stabilizers and not args.quick:
        runs = RUNS  # they are part of the study: its one table and plots, with every run that has a log
    (summarize_long if args.long else summarize)(args, runs)


if __name__ == "__main__":
    main()
