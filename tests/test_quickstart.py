"""The README's main job, on a small slice and a few seconds of training: every step runs for real."""
import os
import re
import subprocess

from conftest import ROOT


def test_quickstart_smoke(tmp_path):
    env = dict(os.environ, WORK=str(tmp_path / "qs"), SAMPLE_LINES="403", MINUTES="0.02")
    proc = subprocess.run(["bash", "scripts/quickstart.sh"], capture_output=True, text=True, cwd=ROOT, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
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
