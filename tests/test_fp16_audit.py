"""--admin-fp16-audit: fp16's limits checked on an fp32 run, with fairseq's own dynamic loss scaler."""
import csv

import torch

from conftest import run_cli, train_args
from fairseq_admin.fp16_audit import FP16_MAX, Fp16Audit


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_overflow_underflow_and_the_scale_trajectory(tmp_path):
    model = torch.nn.Linear(4, 4)  # parameter names "weight", "bias": the encoder's count
    audit = Fp16Audit(str(tmp_path / "a.tsv"), init_scale=2.0 ** 16, scale_window=2, tolerance=0.0,
                      threshold=None, min_loss_scale=1e-4)
    grads = [1.0, 2.0, 0.1, 0.1, 0.1, 0.1]  # ×65536 and 2×32768 overflow, then 0.1×16384 fits: halved twice
    for update, g in enumerate(grads, start=1):
        model.weight.grad = torch.full_like(model.weight, g)
        model.bias.grad = torch.tensor([g, 1e-12, 0.0, 0.0])  # one entry below 2^-24 even after scaling
        audit.after_backward(model)
        audit.end_update(update)
    rows = _rows(tmp_path / "a.tsv")
    scales = [float(r["loss_scale"]) for r in rows]
    assert scales == [65536, 32768, 16384, 16384, 32768, 32768]  # fairseq: doubles after 2 clean updates
    assert [r["overflow"] for r in rows] == ["1", "1", "0", "0", "0", "0"]
    assert rows[0]["cause"] == "grad:weight" and float(rows[0]["max_grad_x_scale"]) > FP16_MAX
    assert abs(float(rows[2]["underflow"]) - 1 / 18) < 1e-6  # 16 + 2 non-zero entries, one flushed


def test_audit_of_a_real_run_and_its_resume(bin_data, tmp_path):
    flags = ["--cpu", "--admin-fp16-audit", "--fp16-init-scale", "100000", "--fp16-scale-window", "3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, str(straight), *flags, "--log-format", "simple", updates=6))
    rows = _rows(straight / "fp16_audit.tsv")
    assert [int(r["update"]) for r in rows] == list(range(1, 7)) and float(rows[0]["loss_scale"]) == 100000
    for before, after in zip(rows, rows[1:]):  # each overflow halves the scale for the next update
        if before["overflow"] == "1":
            assert float(after["loss_scale"]) == float(before["loss_scale"]) / 2 and before["cause"] != "-"
    assert any(r["overflow"] == "1" for r in rows)  # at 1e5 the embeddings' summed-loss gradient overflows
    assert "fp16_scale=" in proc.stdout + proc.stderr
    run_cli("fairseq_cli.train", *train_args(bin_data, str(split), *flags, updates=3))
    with open(split / "fp16_audit.tsv", "a", encoding="utf-8") as f:
        f.write("4\tstale row of an interrupted run\n")  # written after the last checkpoint: dropped on resume
    run_cli("fairseq_cli.train", *train_args(bin_data, str(split), *flags, updates=6))
    assert (split / "fp16_audit.tsv").read_text() == (straight / "fp16_audit.tsv").read_text()
    # the checkpoints deleted, the audit file left: the run starts again from update 0, and so does the file
    for ckpt in split.glob("checkpoint*.pt"):
        ckpt.unlink()
    run_cli("fairseq_cli.train", *train_args(bin_data, str(split), *flags, updates=6))
    assert (split / "fp16_audit.tsv").read_text() == (straight / "fp16_audit.tsv").read_text()
