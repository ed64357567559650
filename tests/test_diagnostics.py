"""Diagnostics: output change under perturbation, folding ω into a plain transformer checkpoint."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, USER_DIR, build, run_cli, train_args
from fairseq_admin import AdminError
from fairseq_admin.tools.diagnostics import batch, build_model, output_change, perturbable
from fairseq_admin.tools.fold import fold_state_dict
from fairseq_admin.profiler import profile_model


def test_output_change_is_zero_without_perturbation_and_quadratic_in_its_size(bin_data):
    task, model = build_model(bin_data, "postln", 2, 32, 64, 2, seed=1)
    sample = batch(task, "valid", 8)
    before = [p.detach().clone() for p in model.parameters()]
    assert output_change(model, sample, rel=0.0) == 0.0
    small, large = output_change(model, sample, 1e-3), output_change(model, sample, 2e-3)
    assert large / small == pytest.approx(4.0, rel=0.1)  # Var scales with δ² for small δ
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # weights restored
    names = [n for n, p in model.named_parameters() if any(p is q for q in perturbable(model))]
    assert names and all(".layers." in n and "layer_norm" not in n for n in names)


def test_post_ln_output_change_grows_faster_with_depth_than_admin(bin_data):
    growth = {}
    for method in ("postln", "admin"):
        values = []
        for depth in (1, 12):
            task, model = build_model(bin_data, method, depth, 32, 64, 2, seed=1)
            sample = batch(task, "valid", 16)
            if method == "admin":
                profile_model(model, sample, seed=1)
            values.append(output_change(model, sample, 0.01, draws=2))
        growth[method] = values[1] / values[0]
    # measured: Post-LN 16.6x from 1 to 12 layers, Admin 5.2x (both with the reference init)
    assert growth["postln"] > 1.5 * growth["admin"], growth


def _ckpt_model(path):
    from fairseq import checkpoint_utils
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(path)])
    return models[0].eval(), task


def test_fold_gives_a_plain_transformer_with_identical_translations(bin_data, tmp_path):
    save = tmp_path / "ck"
    run_cli("fairseq_cli.train", *train_args(bin_data, save, "--admin-fix-first-omega", "--lr", "5e-3", updates=10))
    ck = torch.load(save / "checkpoint_last.pt", weights_only=False)["model"]
    assert torch.equal(ck["encoder.layers.0.self_attn_omega.omega"], torch.ones(32))  # kept fixed
    assert not torch.allclose(ck["decoder.layers.1.ffn_omega.omega"], ck["decoder.layers.1.ffn_omega.omega"][0])
    run_cli("fairseq_admin.tools.cli", "fold", save / "checkpoint_last.pt", tmp_path / "plain.pt")
    folded = torch.load(tmp_path / "plain.pt", weights_only=False)
    assert not any("omega" in k for k in folded["model"]) and folded["cfg"]["model"]["arch"] == "transformer"
    # same function: decoder outputs of both models on a real batch
    admin, task = _ckpt_model(save / "checkpoint_last.pt")
    plain, _ = _ckpt_model(tmp_path / "plain.pt")
    assert type(plain).__name__ == "TransformerModel"
    task.load_dataset("valid")
    ds = task.dataset("valid")
    sample = ds.collater([ds[i] for i in range(8)])
    with torch.no_grad():
        a, b = admin(**sample["net_input"])[0], plain(**sample["net_input"])[0]
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    # and generation without the plugin gives the same translations
    gen = ["--beam", "2", "--max-len-b", "20", "--batch-size", "64"]
    with_plugin = run_cli("fairseq_cli.generate", bin_data, "--user-dir", USER_DIR,
                          "--path", save / "checkpoint_last.pt", *gen).stdout
    # stock fairseq 0.12, without the plugin and with torch's default weights-only loading (the folded file
    # holds plain containers only; fairseq's own checkpoints hold an argparse.Namespace, which it refuses)
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    without = subprocess.run([sys.executable, "-m", "fairseq_cli.generate", bin_data, "--path", tmp_path / "plain.pt",
                              *gen], capture_output=True, text=True, env=env, cwd=ROOT)
    assert without.returncode == 0, without.stderr[-3000:]
    without = without.stdout
    hyps = lambda out: sorted(re.findall(r"^H-\d+\t\S+\t(.*)$", out, re.M))
    assert hyps(with_plugin) and hyps(with_plugin) == hyps(without)


def test_fold_refuses_a_trained_first_omega(bin_data):
    _, _, model = build(bin_data, "--admin-init", "logn")
    with pytest.raises(AdminError, match="--admin-fix-first-omega"):
        fold_state_dict(model.state_dict())


def test_output_change_cli(bin_data, tmp_path):
    png = tmp_path / "oc.png"
    proc = run_cli("fairseq_admin.tools.cli", "output-change", bin_data, "--depths", "1,2", "--methods",
                   "postln,admin,deepnorm", "--embed-dim", "16", "--ffn-dim", "32", "--heads", "2",
                   "--draws", "1", "--sentences", "4", "--plot", png)
    rows = [l.split() for l in proc.stdout.splitlines() if re.match(r"\s*\d", l)]
    assert [r[0] for r in rows] == ["1", "2"] and all(len(r) == 5 and float(r[2]) > 0 for r in rows)
    assert png.stat().st_size > 1000
    bad = run_cli("fairseq_admin.tools.cli", "output-change", bin_data, "--methods", "rezero", check=False)
    assert bad.returncode == 1 and "unknown method(s) rezero" in bad.stderr
    # a folder without binarized data, or without the valid split it reads: one line each, no traceback
    no_valid = tmp_path / "no_valid"
    no_valid.mkdir()
    for f in os.listdir(bin_data):
        if not f.startswith("valid."):
            shutil.copy(os.path.join(bin_data, f), no_valid / f)
    for data, message in ((tmp_path, "holds no binarized translation data"), (no_valid, "has no binarized valid split")):
        bad = run_cli("fairseq_admin.tools.cli", "output-change", data, "--depths", "1", "--methods", "admin",
                      check=False)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-2000:]
