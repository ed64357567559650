"""The benchmark scripts in their quick modes, on the tests' small real-data sample."""
import os
import re
import sys
import subprocess

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from parse_logs import parse  # noqa: E402


def _bash(*args, **env):
    proc = subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, **{k: str(v) for k, v in env.items()}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_study_quick(bin_data, tmp_path):
    out = _bash("benchmarks/study.sh", "--quick", "--bin", bin_data, "--out", tmp_path, "--jobs", "2")
    rows = {r.split("|")[2].strip(): [c.strip() for c in r.split("|")[1:-1]] for r in out.splitlines()
            if r.startswith("| 2-2 |")}
    assert set(rows) == {"Post-LN", "Pre-LN", "Admin (profiled)", "DeepNorm"}, out
    for name, row in rows.items():  # 12 updates, a finite valid loss, a BLEU
        assert row[3] == "12" and 0 < float(row[4]) < 20 and row[7] != "-", row
    for log in tmp_path.glob("*.log"):  # every method learns: valid loss falls from update 3 to 12
        valid = parse(str(log))["valid"]
        assert [u for u, _ in valid] == [3, 6, 9, 12] and valid[-1][1] < valid[0][1] - 0.1, (log.name, valid)
    admin, deepnorm = rows["Admin (profiled)"], rows["DeepNorm"]
    assert float(admin[10]) > 0 and admin[8].startswith(("1.", "2.")), admin  # profiled in ... s; ω logged
    enc = re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", deepnorm[8])
    assert enc and enc.group(2) == enc.group(3), deepnorm  # DeepNorm's α is fixed: min == max
    assert rows["Post-LN"][8] == "-"  # no ω to log
    assert (tmp_path / "valid_loss_2x2.png").stat().st_size > 1000 and (tmp_path / "summary.md").exists()
    # another thread count does not redo finished runs (it is recorded in each log, as the processor is)
    again = _bash("benchmarks/study.sh", "--quick", "--bin", bin_data, "--out", tmp_path, "--threads", "2")
    assert again.count("finished earlier, skipped") == 4
    header = (tmp_path / "2x2-admin-seed1.log").read_text().splitlines()[:3]  # command, versions, processor
    assert header[1].startswith("# versions: ") and header[2].startswith("# cpu: ") and "; 1 thread(s)" in header[2]
    two = tmp_path / "two-threads"
    _bash("benchmarks/study.sh", "--quick", "--bin", bin_data, "--out", two, "--only", "2x2-admin-", "--threads", "2")
    assert "; 2 thread(s)" in (two / "2x2-admin-seed1.log").read_text().splitlines()[2]
    assert parse(str(two / "2x2-admin-seed1.log"))["valid"][-1][0] == 12
    bad = subprocess.run([sys.executable, "benchmarks/study.py", "--threads", "0"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--threads take a whole number" in bad.stderr.splitlines()[-1], bad.stderr


def test_throughput_quick(bin_data):
    # too short to time anything; what must hold is that the ratio compares like with like: both runs
    # finished and logged the same update intervals over identical batches (a run cut early fails this)
    out = _bash("benchmarks/throughput_cpu.sh", bin_data, 8)
    m = re.search(r"compared intervals: updates (\d+)\.\.(\d+) \((\d+) intervals in each run\); identical batches: (\w+)", out)
    assert m and (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (4, 8, 3) and m.group(4) == "yes", out
    assert float(re.search(r"admin/stock words/s ratio: ([\d.]+)", out).group(1)) > 0


def test_study_long_quick_resumes_from_a_committed_state(bin_data, tmp_path):
    """--long in its quick mode: best and averaged checkpoints decoded, β² logged and plotted; a run
    killed mid-way, stashed (--stash) and resumed in a checkout without its checkpoints ends with the same
    valid losses as one that ran through."""
    from conftest import run_killed_when

    study = ["bash", "benchmarks/study.sh", "--long", "--quick", "--only", "admin", "--bin", bin_data]
    through, cut = tmp_path / "through", tmp_path / "cut"
    out = _bash(*study[1:], "--out", through)
    assert "| 2-2 | Admin (profiled) | 1 | 15 |" in out, out
    row = next(r for r in out.splitlines() if r.startswith("| 2-2 | Admin (profiled) | 1 | 15 |"))
    assert row.endswith(", 1 thread |"), row  # the processor column, from the log's "# cpu:" line
    assert (through / "2x2-admin-seed1.avg.bleu.txt").exists(), out  # the study's own lines say which step failed
    avg = (through / "2x2-admin-seed1.avg.bleu.txt").read_text()
    assert re.search(r"averaged 5 checkpoints \(checkpoint_\d+_3\.pt, .*checkpoint_\d+_15\.pt\)", avg) and "BLEU4 = " in avg
    assert "BLEU4 = " in (through / "2x2-admin-seed1.best.bleu.txt").read_text()
    assert (through / "beta2_2x2-admin-seed1.png").stat().st_size > 1000
    assert (through / "valid_loss_long.png").stat().st_size > 1000
    assert (through / "dependency_long.png").stat().st_size > 1000  # encoder and cross-attention β² over training
    # training against valid loss at the run's end: the last epoch's mean loss and the last validation
    gap = re.search(r"^\| 2-2 Admin \(profiled\), seed 1 \|.*\| ([\d.]+) / ([\d.]+) \(([-+][\d.]+)\) \|$", out, re.M)
    assert gap and abs(float(gap.group(2)) - parse(str(through / "2x2-admin-seed1.log"))["valid"][-1][1]) < 0.006, out
    assert abs(float(gap.group(2)) - float(gap.group(1)) - float(gap.group(3))) < 0.006, gap.group(0)

    # the source-use check on the finished run: with training's batching (a multiple of 8, the last partial
    # batch left out) fairseq-validate's own-source nll at the best checkpoint is the log's valid nll there
    proc = subprocess.run([sys.executable, "benchmarks/source_use.py", "--bin", bin_data, "--runs-dir", through,
                           "--out", tmp_path / "su", "--required-batch-size-multiple", "8"], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (through / "2x2-admin-seed1.log").read_text()
    valid = {int(u): float(n) for n, u in re.findall(r"valid on 'valid' subset \| loss [\d.]+ \| nll_loss ([\d.]+) .*?"
                                                     r"num_updates (\d+)", text)}
    best = max(u for u, _ in parse(str(through / "2x2-admin-seed1.log"))["valid"]
               if _ == min(v for _, v in parse(str(through / "2x2-admin-seed1.log"))["valid"]))
    row = re.search(rf"\| 2x2-admin-seed1 \| checkpoint_best\.pt \(update {best}\) \| valid \(100, in batches of a multiple of 8\) \| ([\d.]+) \| ([\d.]+) "
                    r"\| ([-+][\d.]+) \|", (tmp_path / "su" / "summary.md").read_text())
    assert row and abs(float(row.group(1)) - valid[best]) <= 0.006, (valid, proc.stdout)
    assert "| 2x2-admin-seed1 | checkpoint_last.pt (update 15) | test (100, in batches of a multiple of 8) |" in proc.stdout, proc.stdout

    log = cut / "2x2-admin-seed1.log"
    run_killed_when(study + ["--out", str(cut)], lambda: log.exists() and " @ 6 updates" in log.read_text())
    assert "done training" not in log.read_text()
    # its checkpoints lost and nothing stashed (a fresh machine): the run starts again, and so does its log
    lost = tmp_path / "lost"
    subprocess.run(["cp", "-r", str(cut), str(lost)], check=True)
    subprocess.run(["rm", "-rf", str(lost / "checkpoints")], check=True)
    _bash(*study[1:], "--out", lost, STUDY_STASH_ROOT=tmp_path / "elsewhere")
    again_log = (lost / "2x2-admin-seed1.log").read_text()
    assert again_log.count("# fairseq-train ") == 1 and again_log.count("No existing checkpoint found") == 1
    assert parse(str(lost / "2x2-admin-seed1.log"))["valid"] == parse(str(through / "2x2-admin-seed1.log"))["valid"]
    _bash(*study[1:], "--out", cut, "--stash")
    manifest = (cut / "resume" / "2x2-admin-seed1" / "manifest.json").read_text()
    assert '"checkpoint_last.pt"' in manifest
    subprocess.run(["rm", "-rf", str(cut / "checkpoints")], check=True)  # a fresh clone has none
    again = _bash(*study[1:], "--out", cut, STUDY_STASH_ROOT=tmp_path / "elsewhere")
    assert "resuming from the committed state" in again, again
    assert sorted(dict(parse(str(log))["valid"]).items()) == parse(str(through / "2x2-admin-seed1.log"))["valid"]


def test_fp16_audit_quick(bin_data, tmp_path):
    def audit():
        proc = subprocess.run([sys.executable, "benchmarks/fp16_audit.py", "--quick", "--only", "admin", "--bin",
                               str(bin_data), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")],
                              capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PATH=os.path.dirname(
                                  sys.executable) + os.pathsep + os.environ["PATH"]))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout
    out = audit()
    assert "| admin | 6 |" in out and (tmp_path / "o" / "loss_scale.png").exists()
    tsv = (tmp_path / "o" / "admin.fp16_audit.tsv").read_text()
    assert tsv.count("\n") == 7  # header + 6 updates
    # its checkpoints gone (a fresh machine): the run, its log and its audit file start again, not appended to
    subprocess.run(["rm", "-f", *map(str, (tmp_path / "w" / "admin").glob("checkpoint*.pt"))], check=True)
    assert "| admin | 6 |" in audit()
    assert (tmp_path / "o" / "admin.fp16_audit.tsv").read_text() == tsv
    assert (tmp_path / "o" / "admin.log").read_text().count("$ fairseq-train") == 1


def test_dependency_cost_quick(bin_data):
    # the β² meter's cost benchmark runs and prints its ratio (too short to time anything)
    proc = subprocess.run([sys.executable, "benchmarks/dependency_cost.py", "--quick", "--pairs", "2", "--bin", str(bin_data)],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"ratio metered/plain: [\d.]+ \(a measuring step costs [-+][\d.]+%\)", proc.stdout), proc.stdout
    assert re.search(r"time inside the meter's code per metered step: median [\d.]+ ms", proc.stdout), proc.stdout


def test_mechanism_quick(bin_data, tmp_path):
    # β², relative gradient norms and ω at initialisation for the five study methods (2-2, width 32)
    import json
    proc = subprocess.run([sys.executable, "benchmarks/mechanism.py", "--quick", "--bin", bin_data, "--out", tmp_path],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # fairseq's log format at INFO, not the DEBUG root logger one of fairseq's modules sets on import
    assert "DEBUG" not in proc.stderr and "| INFO | fairseq" in proc.stderr, proc.stderr[-3000:]
    results = {r["method"]: r for r in json.loads((tmp_path / "init.json").read_text())}
    assert list(results) == ["postln", "preln", "admin", "admin-logn", "deepnorm"]
    for method, r in results.items():
        rows = r["rows"]
        assert [x["stack"] for x in rows] == ["encoder"] * 4 + ["decoder"] * 6, method
        assert all(0 < x["beta2"] < 1 for x in rows), (method, rows)
        assert max(x["rel_grad"] for x in rows) == 1.0 and all(x["rel_grad"] > 0 for x in rows), method
    first = [x["beta2"] for x in results["postln"]["rows"]][0]
    # profiled Admin's first sublayer has ω = 1 and Post-LN's weights: the same β² there, lighter above
    assert results["admin"]["rows"][0]["omega"] == 1.0
    assert abs(results["admin"]["rows"][0]["beta2"] - first) < 1e-9
    assert results["admin"]["beta2_enc_mean"] < results["postln"]["beta2_enc_mean"]
    omegas = {x["omega"] for x in results["admin-logn"]["rows"] if x["stack"] == "encoder"}
    assert len(omegas) == 1 and omegas.pop() > 1  # logn: one constant ω > 1 per stack
    assert (tmp_path / "init.png").stat().st_size > 1000 and "| Admin (logn) |" in (tmp_path / "init.md").read_text()


def test_source_use_mismatched_subsets(bin_data, tmp_path):
    """The mismatched subsets pair every reference with another sentence's source, the same tokens."""
    from fairseq.data import Dictionary, data_utils
    import source_use

    for n in range(2, 40):
        assert all(j != i for i, j in enumerate(source_use.rotation(n))) and sorted(source_use.rotation(n)) == list(range(n))
    sizes = source_use.build_data(bin_data, str(tmp_path))
    assert sizes == {"valid": 100, "test": 100}
    d = Dictionary.load(str(tmp_path / "dict.de.txt"))
    load = lambda name: data_utils.load_indexed_dataset(str(tmp_path / name), d)  # noqa: E731
    for split in ("valid", "test"):
        own, other = load(f"{split}.de-en.de"), load(f"{split}mis.de-en.de")
        assert [other[i].tolist() for i in range(len(own))] == [own[j].tolist() for j in source_use.rotation(len(own))]
        assert (tmp_path / f"{split}mis.de-en.en.bin").read_bytes() == (tmp_path / f"{split}.de-en.en.bin").read_bytes()
    # no language pair there: one error line, not a traceback
    proc = subprocess.run([sys.executable, "benchmarks/source_use.py", "--bin", str(tmp_path / "nothing"),
                           "--runs-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and proc.stderr.startswith("source_use: error: ") and "Traceback" not in proc.stderr


def test_an_abort_at_exit_after_done_training_keeps_the_run(tmp_path):
    """fairseq 0.12's prefetch thread can make fairseq-train abort (SIGABRT) at interpreter exit after its
    last checkpoint is saved: the run counts as finished (noted in its log); every other failure does not."""
    import signal

    import study

    done = "| INFO | fairseq_cli.train | done training in 3.8 seconds\nterminate called without an active exception\n"
    log = tmp_path / "run.log"
    log.write_text(done)
    assert study.training_finished(0, done) and study.training_finished(-signal.SIGABRT, done, str(log))
    assert "aborted at exit (exit -6)" in log.read_text().splitlines()[-1]
    assert study.training_finished(134, done)  # the same abort seen through a shell
    assert not study.training_finished(1, done)  # a Python error after the end is a failure
    assert not study.training_finished(-signal.SIGKILL, done)
    assert not study.training_finished(0, "| epoch 001 | loss 9.1\n")  # killed before the end, whatever the exit
    assert not study.training_finished(-signal.SIGABRT, "| epoch 001 | loss 9.1\n")


def test_long_summary_helpers():
    import study

    values = {"enc_01_attn": 0.1, "enc_01_ffn": 0.3, "enc_mean": 9.0, "dec_01_attn": 0.2, "dec_02_attn": 0.4,
              "dec_01_cross": 0.01, "dec_02_cross": 0.03, "dec_01_ffn": 0.5, "dec_mean": 9.0}
    enc, attn, cross, ffn = study.stack_means(values)  # the logged *_mean entries are not sublayers
    assert (round(enc, 6), round(attn, 6), round(cross, 6), round(ffn, 6)) == (0.2, 0.3, 0.02, 0.5)
    train = {214: 10.5, 1070: 7.0, 1926: 6.0, 4000: 4.0}
    valid = {1000: 7.3, 1100: 7.2, 1900: 6.5, 4000: 5.0}
    # the epoch ending nearest each update, the validation nearest that epoch's end; "-" where none is near
    assert study.gap_row("r", train, valid, (1000, 2000, 3000, 4000)) == \
        "| r | 7.00 / 7.20 (+0.20) | 6.00 / 6.50 (+0.50) | - | 4.00 / 5.00 (+1.00) |"
    assert study.gap_row("r", {}, valid, (1000,)) == "| r | - |"
