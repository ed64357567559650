"""score and average: what they refuse and what they compute, on small hand-made inputs (the real
fairseq-generate output and checkpoints are scored and averaged end to end in test_recipes)."""
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from fairseq_admin import AdminError
from fairseq_admin.tools.average import average_checkpoints, last_epoch_checkpoints
from fairseq_admin.tools.score import mean_std, read_generate_output, score, split_compounds

REFS = ["das ist ein test", "noch ein satz hier", "der dritte satz"]


def _generate_output(path, hyps, nbest_worse=False, final=True, ids=None):
    lines = []
    for i in ids if ids is not None else range(len(hyps)):
        lines += [f"S-{i}\tquelle {i}", f"T-{i}\t{REFS[i]}", f"H-{i}\t-0.1\t{hyps[i]}"]
        if nbest_worse:
            lines.append(f"H-{i}\t-5.0\tganz falsch")
    if final:
        lines.append("Generate test with beam=5: BLEU4 = 42.00, 1/1/1/1 (BP=1.000, ratio=1.000, syslen=1, reflen=1)")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_nbest_scores_the_best_hypothesis(tmp_path):
    path = _generate_output(tmp_path / "g.txt", REFS, nbest_worse=True)
    _, hyps, refs, _ = read_generate_output(path)
    assert hyps == REFS and refs == REFS


def test_cut_off_output_is_refused(tmp_path):
    path = _generate_output(tmp_path / "g.txt", REFS[:2], final=False, ids=[0, 1])
    with pytest.raises(AdminError, match="cut off"):
        score(path)


def test_missing_sentences_are_reported_loudly(tmp_path):
    path = _generate_output(tmp_path / "g.txt", REFS, ids=[0, 2])
    raw = tmp_path / "ref.txt"
    raw.write_text("".join(r + "\n" for r in REFS), encoding="utf-8")
    out = score(path, str(raw))
    assert out["COVERAGE WARNING"].startswith("only 2 of 3 sentences translated (missing ids 1)")
    complete = score(_generate_output(tmp_path / "h.txt", REFS), str(raw))
    assert "COVERAGE WARNING" not in complete and "COVERAGE NOTE" not in complete
    # the last sentence missing, no reference to count against: said, not silently scored
    last_missing = score(_generate_output(tmp_path / "l.txt", REFS, ids=[0, 1]))
    assert "COVERAGE WARNING" not in last_missing
    assert last_missing["COVERAGE NOTE"].startswith("2 sentences translated; without --raw-ref the test set's size "
                                                    "is unknown")


def test_compound_split_is_fairseqs():
    # perl -ple 's{(\S)-(\S)}{$1 ##AT##-##AT## $2}g': one non-overlapping pass, @-@ included
    assert split_compounds("ein Max-Planck-Institut") == "ein Max ##AT##-##AT## Planck ##AT##-##AT## Institut"
    assert split_compounds("a-b-c") == "a ##AT##-##AT## b-c"  # one pass: b is consumed by the first match
    assert split_compounds("gut @-@ gemacht") == "gut @ ##AT##-##AT## @ gemacht"
    assert split_compounds("a - b") == "a - b"


def test_mean_and_std_over_seeds(tmp_path):
    assert mean_std([35.0, 36.0]) == "35.50 ± 0.71"
    paths = [_generate_output(tmp_path / f"g{i}.txt", REFS) for i in range(2)]
    proc = subprocess.run([sys.executable, "-m", "fairseq_admin.tools.cli", "score", *paths, "--paper", "35.67 ± 0.15"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "tokenized BLEU, mean ± std over 2 seeds: 42.00 ± 0.00   (the paper: 35.67 ± 0.15)" in proc.stdout


def _checkpoints(folder, epochs):
    folder.mkdir(exist_ok=True)
    for e in epochs:
        torch.save({"model": {"w": torch.full((2,), float(e))}}, folder / f"checkpoint{e}.pt")


def test_average_takes_the_epochs_up_to_the_upper_bound(tmp_path):
    _checkpoints(tmp_path / "ck", range(1, 15))
    paths = last_epoch_checkpoints(str(tmp_path / "ck"), 10, upper_epoch=12)
    assert [p.rsplit("checkpoint", 1)[1] for p in paths] == [f"{e}.pt" for e in range(3, 13)]
    out = tmp_path / "avg.pt"
    average_checkpoints(paths, str(out))
    assert torch.allclose(torch.load(out, weights_only=True)["model"]["w"], torch.full((2,), 7.5))


def test_average_refuses_fewer_or_negative(tmp_path):
    _checkpoints(tmp_path / "ck", [1, 2, 3])
    with pytest.raises(AdminError, match=r"has 3 epoch checkpoint\(s\) \(1, 2, 3\), not the 10 asked for"):
        last_epoch_checkpoints(str(tmp_path / "ck"), 10)
    assert len(last_epoch_checkpoints(str(tmp_path / "ck"), 10, allow_fewer=True)) == 3
    with pytest.raises(AdminError, match="--last must be at least 1"):
        last_epoch_checkpoints(str(tmp_path / "ck"), -2)


def test_average_refuses_checkpoints_of_another_width(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    torch.save({"model": {"w": torch.zeros(2, 4)}}, folder / "checkpoint1.pt")
    torch.save({"model": {"w": torch.zeros(2, 8)}}, folder / "checkpoint2.pt")
    with pytest.raises(AdminError, match=r"checkpoint2.pt is not the same model as .*checkpoint1.pt: its w has "
                                         r"shape \(2, 8\), not \(2, 4\)"):
        average_checkpoints([str(folder / "checkpoint1.pt"), str(folder / "checkpoint2.pt")], str(tmp_path / "a.pt"))
    assert not (tmp_path / "a.pt").exists()
