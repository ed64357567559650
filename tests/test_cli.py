"""End to end with the real fairseq CLIs on the bundled real corpus: profile, train, generate,
resume, the two-step flow, and the one-line errors."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, USER_DIR, run_cli, train_args
from fairseq_admin.profile_file import write_profile
from test_profile_file import make_profile


def _omegas(checkpoint):
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    return {k: v for k, v in state.items() if k.endswith("_omega.omega")}


def _profile_omegas(path):
    d = json.loads(open(path).read())
    return [s["omega"] for st in ("encoder", "decoder") for s in d[st]["sublayers"]]


def _log(proc):
    return proc.stdout + proc.stderr


def _error_line(proc):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.splitlines() if "error:" in l]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def trained(bin_data, tmp_path_factory):
    save = str(tmp_path_factory.mktemp("run") / "ck")
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, save))
    return save, _log(proc)


def test_train_profiles_first_and_logs_the_table(trained):
    save, log = trained
    assert "Admin profile (" in log and re.search(r"decoder\s+1 ffn", log)
    assert log.index("Admin profile (") < log.index("begin training epoch 1")
    profile = json.load(open(os.path.join(save, "admin_profile.json")))
    assert profile["encoder"]["layers"] == 2 and profile["seed"] == 7 and profile["tokens"] > 0
    assert profile["arch"] == "admin_transformer" and profile["encoder"]["embed_dim"] == 32
    # ω is in the checkpoint, trained from the profiled values (learnable: close, not equal)
    ck = _omegas(os.path.join(save, "checkpoint_last.pt"))
    assert len(ck) == 4 + 6
    first_dec_ffn = ck["decoder.layers.0.ffn_omega.omega"]
    assert first_dec_ffn.shape == (32,)
    assert torch.allclose(first_dec_ffn, torch.full((32,), profile["decoder"]["sublayers"][2]["omega"]), atol=0.05)


def test_generate_needs_no_profile_file(trained, bin_data, tmp_path):
    save, _ = trained
    work = tmp_path / "copy"
    shutil.copytree(save, work)
    os.remove(work / "admin_profile.json")
    proc = run_cli("fairseq_cli.generate", bin_data, "--user-dir", USER_DIR, "--path",
                   work / "checkpoint_last.pt", "--beam", "2", "--max-len-b", "30", "--batch-size", "64")
    assert re.search(r"BLEU4 = \d+\.\d+", proc.stdout)
    translated = int(re.search(r"Translated ([\d,]+) sentences", _log(proc)).group(1))
    assert translated >= 90 and len(re.findall(r"^H-\d+", proc.stdout, re.M)) == translated
    assert "Admin profile" not in _log(proc)
    assert not (work / "admin_profile.json").exists()
    # fairseq's hub interface (translation from Python) loads the same model, ω and all, and translates as
    # fairseq-generate does
    sources = dict(re.findall(r"^S-(\d+)\t(.*)$", proc.stdout, re.M))
    hyps = dict(re.findall(r"^H-(\d+)\t\S+\t(.*)$", proc.stdout, re.M))
    ids = sorted(sources, key=int)[:8]
    assert len(ids) == 8 and all(hyps[i] for i in ids)
    hub = f"""
import json, sys
from fairseq.models.transformer import TransformerModel
hub = TransformerModel.from_pretrained({str(work)!r}, checkpoint_file="checkpoint_last.pt",
                                       data_name_or_path={str(bin_data)!r}, user_dir={USER_DIR!r})
model = hub.models[0]
print(json.dumps([type(model).__name__, float(model.encoder.layers[1].ffn_omega.omega.sum()),
                  hub.translate(json.loads(sys.stdin.read()), beam=2, max_len_b=30)]))
"""
    run = subprocess.run([sys.executable, "-c", hub], input=json.dumps([sources[i] for i in ids]),
                         capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == 0, run.stderr[-3000:]
    name, omega, translations = json.loads(run.stdout.strip().splitlines()[-1])
    assert name == "AdminTransformerModel" and "Admin profile" not in run.stderr
    assert abs(omega - float(_omegas(work / "checkpoint_last.pt")["encoder.layers.1.ffn_omega.omega"].sum())) < 1e-6
    assert translations == [hyps[i] for i in ids]


def test_resume_keeps_trained_omega(trained, bin_data, tmp_path):
    save, _ = trained
    work = str(tmp_path / "ck")
    shutil.copytree(save, work)
    os.remove(os.path.join(work, "admin_profile.json"))
    before = _omegas(os.path.join(work, "checkpoint_last.pt"))
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, work, updates=14))
    log = _log(proc)
    assert "resuming from" in log and "Admin profile (" not in log
    assert "Loaded checkpoint" in log
    assert not os.path.exists(os.path.join(work, "admin_profile.json"))
    after = _omegas(os.path.join(work, "checkpoint_last.pt"))
    for k in before:  # continued from the trained ω (2 more updates), not re-profiled
        assert torch.allclose(before[k], after[k], atol=0.01) and not torch.equal(before[k], after[k])


@pytest.mark.parametrize("how", ["suffix", "finetune", "continue_once"])
def test_resume_is_detected_as_fairseq_detects_it(trained, bin_data, tmp_path, how):
    # every way fairseq-train loads a checkpoint means ω comes from it: no profiling, no profile written
    save, _ = trained
    work = tmp_path / "ck"
    if how == "suffix":
        shutil.copytree(save, work)
        os.rename(work / "checkpoint_last.pt", work / "checkpoint_last_x.pt")
        os.remove(work / "admin_profile.json")
        extra = ["--checkpoint-suffix", "_x"]
    else:
        flag = "--finetune-from-model" if how == "finetune" else "--continue-once"
        extra = [flag, os.path.join(save, "checkpoint_last.pt")]
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, work, *extra, updates=14))
    log = _log(proc)
    assert "resuming from" in log and "Admin profile (" not in log, log[-3000:]
    assert not (work / "admin_profile.json").exists()


def test_truncated_checkpoint_is_one_line_with_the_way_out(trained, bin_data, tmp_path):
    save, _ = trained
    work = tmp_path / "ck"
    shutil.copytree(save, work)
    data = (work / "checkpoint_last.pt").read_bytes()
    (work / "checkpoint_last.pt").write_bytes(data[: len(data) // 2])  # killed while copying, say
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, work, updates=14), check=False)
    line = _error_line(proc)
    assert "checkpoint_last.pt is not a readable checkpoint: it is truncated or corrupted" in line
    assert "--restore-file checkpoint_best.pt" in line


def test_two_step_flow_equals_one_command(trained, bin_data, tmp_path):
    save, _ = trained
    path = tmp_path / "profile.json"
    step1 = tmp_path / "step1"
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, step1, "--admin-profile-only",
                                                    "--admin-profile", path))
    assert "--admin-profile-only" in _log(proc) and path.exists()
    assert not any(f.endswith(".pt") for f in os.listdir(step1)) if step1.exists() else True
    # same seed and data: the same profile as the one-command run, bit for bit
    assert _profile_omegas(path) == _profile_omegas(os.path.join(save, "admin_profile.json"))
    step2 = tmp_path / "step2"
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, step2, "--admin-profile", path,
                                                    "--admin-omega-fixed", updates=3))
    assert "Admin ω from" in _log(proc) and "Admin profile (" not in _log(proc)
    ck = _omegas(step2 / "checkpoint_last.pt")
    assert ck["decoder.layers.1.encoder_attn_omega.omega"][0].item() == pytest.approx(
        _profile_omegas(path)[4 + 4], rel=1e-6)


def test_legacy_profile_is_accepted_and_converted(bin_data, tmp_path):
    legacy = tmp_path / "profile.ratio.init"
    legacy.write_text("1 1.0\n2 1.5\n3 1.7\n4 1.9\n1 1.0\n2 1.3\n3 1.6\n4 1.8\n5 2.0\n6 2.2\n")
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, tmp_path / "ck", "--admin-profile", legacy,
                                                    "--admin-omega-fixed", updates=2))
    assert "legacy:profile.ratio.init" in _log(proc)
    assert _omegas(tmp_path / "ck" / "checkpoint_last.pt")["encoder.layers.1.ffn_omega.omega"][0].item() \
        == pytest.approx(1.9)
    run_cli("fairseq_admin.tools.cli", "import-profile", legacy, tmp_path / "new.json", "--encoder-embed-dim", "32")
    assert _profile_omegas(tmp_path / "new.json")[3] == 1.9
    shown = run_cli("fairseq_admin.tools.cli", "show", tmp_path / "new.json")
    assert re.search(r"encoder\s+1 ffn .* 1\.9000", shown.stdout)


def test_errors_are_one_clear_line(bin_data, tmp_path):
    cases = [
        (["--encoder-normalize-before"], "normalize-before"),
        (["--admin-profile", tmp_path / "missing.json"], "does not exist: create it first"),
        (["--admin-init", "logn", "--admin-profile-only"], "need --admin-init profile"),
        (["--admin-init", "bogus"], "invalid choice: 'bogus'"),
        # profile options with a model that has no ω: refused, not a silent full training run
        (["--arch", "transformer", "--admin-profile-only"], "need an Admin model, but --arch transformer"),
        (["--arch", "refinit_transformer", "--admin-profile", tmp_path / "p.json"], "need an Admin model"),
    ]
    for extra, message in cases:
        proc = run_cli("fairseq_cli.train", *train_args(bin_data, tmp_path / "ck", *extra), check=False)
        assert message in _error_line(proc)
    wide = tmp_path / "wide.json"  # a valid profile of a 2-2 model of width 48
    write_profile(make_profile(dim=48), str(wide))
    proc = run_cli("fairseq_cli.train", *train_args(bin_data, tmp_path / "ck", "--admin-profile", wide), check=False)
    assert re.search(r"made for encoder 2 layers x 48 dims.*this model has encoder 2 layers x 32", _error_line(proc))
    for data, message in ((tmp_path / "nowhere", "does not exist: binarize"), (tmp_path, "holds no binarized")):
        proc = run_cli("fairseq_cli.train", *train_args(str(data), tmp_path / "ck3"), check=False)
        assert message in _error_line(proc)
    no_train = tmp_path / "no_train"
    shutil.copytree(bin_data, no_train)
    for f in os.listdir(no_train):
        if f.startswith("train."):
            os.remove(no_train / f)
    proc = run_cli("fairseq_cli.train", *train_args(str(no_train), tmp_path / "ck2", "--admin-profile-only"),
                   check=False)
    assert "profiling needs training data" in _error_line(proc)
    assert not (tmp_path / "ck2" / "admin_profile.json").exists()


def test_show_cli_table_and_plot(trained, tmp_path):
    save, _ = trained
    proc = run_cli("fairseq_admin.tools.cli", "show", os.path.join(save, "admin_profile.json"), "--plot", tmp_path / "p.png")
    rows = [l for l in proc.stdout.splitlines() if l.startswith(("encoder", "decoder"))]
    assert len(rows) == 4 + 6
    beta2 = [float(r.split()[-1]) for r in rows]
    assert all(0 < b < 1 for b in beta2)
    assert os.path.getsize(tmp_path / "p.png") > 1000


def test_fairseq_hydra_train_runs_admin(bin_data, tmp_path):
    # fairseq's own configuration system: the committed YAML, values overridden on the command line
    hydra = os.path.join(os.path.dirname(sys.executable), "fairseq-hydra-train")
    save = tmp_path / "ck"
    proc = subprocess.run([hydra, "--config-dir", os.path.join(ROOT, "configs", "hydra"), "--config-name",
                           "admin_sample", f"common.user_dir={USER_DIR}",
                           f"task.data={os.path.relpath(bin_data, tmp_path)}",  # relative paths work, as documented
                           "checkpoint.save_dir=ck", "optimization.max_update=4", "model.encoder_layers=2",
                           "model.decoder_layers=2", "task.admin_log_omega=2", "common.log_interval=2"],
                          capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "Admin profile (" in log and "done training" in log and "omega_enc_mean=" in log
    profile = json.load(open(save / "admin_profile.json"))
    assert profile["encoder"]["layers"] == 2 and profile["encoder"]["embed_dim"] == 128
    ck = _omegas(save / "checkpoint_last.pt")
    assert len(ck) == 2 * 2 + 2 * 3
