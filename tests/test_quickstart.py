"""The README's main job, on a small slice and a few seconds of training: every step runs for real."""
import os
import re
import subprocess

from conftest import ROOT


def _quickstart_status(work, **extra):
    env = dict(os.environ, WORK=str(work), SAMPLE_LINES="403", UPDATES="12", LOG_INTERVAL="2")
    env.pop("MINUTES", None)
    env.update(extra)
    return subprocess.run(["bash", "scripts/quickstart.sh"], capture_output=True, text=True, cwd=ROOT, env=env)


def _quickstart(work, **extra):
    proc = _quickstart_status(work, **extra)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_quickstart_smoke(tmp_path):
    out = _quickstart(tmp_path / "qs")
    assert re.search(r"\| quickstart \| update \d+/12, [\d.]+ updates/s, about \d+:\d\d left", out)  # progress
    assert "for 12 updates --cpu, 2 threads" in out
    assert re.search(r"\| INFO \| fairseq_admin\.task \| Admin profile \(", out)  # fairseq-style progress
    assert re.search(r"decoder\s+2 ffn\s", out)  # the ω table of the 3-3 model
    assert re.search(r"tokenized BLEU \(fairseq-generate --remove-bpe\): BLEU4 = \d", out)
    assert "case-insensitive sacreBLEU (detokenized vs raw reference)" in out
    for name in ("checkpoints/checkpoint_best.pt", "checkpoints/admin_profile.json", "generate.out", "hyp.txt"):
        assert (tmp_path / "qs" / name).exists(), name
    assert f"translations: {tmp_path / 'qs'}/generate.out" in out
    # every test sentence translated: 403 is no multiple of 8, and fairseq-generate would drop the last 3
    # without --required-batch-size-multiple 1
    assert len((tmp_path / "qs" / "hyp.txt").read_text(encoding="utf-8").splitlines()) == 403
    assert "COVERAGE WARNING" not in out
    assert "versions: python " in out  # the score names what made it
    # a rerun in the same folder resumes only the same run: other data, threads, or fewer updates than it
    # already has are one line each, and nothing is overwritten
    hyp = (tmp_path / "qs" / "hyp.txt").read_bytes()
    for extra, message in (({"UPDATES": "6"}, "already trained for 12 updates, more than UPDATES=6"),
                           ({"THREADS": "1"}, "made with THREADS=2, --cpu, not THREADS=1, --cpu"),
                           ({"SAMPLE_LINES": "404"}, "holds a run trained on other data")):
        bad = _quickstart_status(tmp_path / "qs", **extra)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-3000:]
    assert (tmp_path / "qs" / "hyp.txt").read_bytes() == hyp
    # settings that make no sense: one line before anything is set up
    for name, value in (("UPDATES", "0"), ("UPDATES", "abc"), ("THREADS", "0"), ("MINUTES", "x"), ("MINUTES", "0")):
        bad = _quickstart_status(tmp_path / "never", **{name: value})
        assert bad.returncode == 2 and f"quickstart: error: {name}={value}: give" in bad.stderr, bad.stderr[-2000:]
        assert not (tmp_path / "never").exists()
    # same seed, threads and versions: the same translations from a second run in another folder
    again = _quickstart(tmp_path / "again")
    assert "update 12/12" in again or "done training" in again
    assert (tmp_path / "again" / "hyp.txt").read_bytes() == (tmp_path / "qs" / "hyp.txt").read_bytes()
