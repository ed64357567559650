"""Checkpoints load weights-only: a crafted checkpoint whose unpickling would run code is refused by
fairseq-generate, fold and average (one line, nothing executed); importing the plugin switches no
process-wide safety off."""
import os
import random
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, USER_DIR, run_cli
from fairseq_admin.errors import AdminError


class _Payload:
    """Unpickling this calls os.mkdir(marker): code execution from a data file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _crafted(tmp_path):
    marker = str(tmp_path / "pwned")
    path = tmp_path / "crafted.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "cfg": None, "extra": _Payload(marker)}, path)
    return str(path), marker


def _one_line_refusal(proc, path_hint=""):
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq-admin: error:") and "posix.mkdir" in last and "refused" in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "--trust-checkpoint" in last and path_hint in last


def test_crafted_checkpoint_is_refused_everywhere(bin_data, tmp_path):
    path, marker = _crafted(tmp_path)
    gen = run_cli("fairseq_cli.generate", bin_data, "--user-dir", USER_DIR, "--path", path, "--gen-subset", "valid",
                  "--cpu", "--batch-size", "8", check=False)
    _one_line_refusal(gen)
    fold = run_cli("fairseq_admin.tools.cli", "fold", path, tmp_path / "plain.pt", check=False)
    _one_line_refusal(fold, path)
    folder = tmp_path / "ck"
    folder.mkdir()
    os.replace(path, folder / "checkpoint1.pt")
    avg = run_cli("fairseq_admin.tools.cli", "average", folder, "--last", "1", "--output", tmp_path / "avg.pt", check=False)
    _one_line_refusal(avg)
    assert not os.path.exists(marker) and not (tmp_path / "plain.pt").exists() and not (tmp_path / "avg.pt").exists()
    # the file really is malicious: trusting it runs its code (which is why nothing trusts by default)
    run_cli("fairseq_admin.tools.cli", "fold", folder / "checkpoint1.pt", tmp_path / "plain.pt", "--trust-checkpoint",
            check=False)
    assert os.path.exists(marker)


def test_importing_the_plugin_switches_no_safety_off():
    code = ("import os, torch, fairseq_admin; "
            "assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ; "
            "import inspect; assert inspect.signature(torch.load).parameters['weights_only'].default in (None, True); "
            "print('ok')")
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize("command", ["show", "import-profile", "fold", "average", "score", "recipe"])
@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8\n", b"", "truncated"])
def test_garbage_files_get_one_line_naming_them(tmp_path, capsys, command, content):
    from fairseq_admin.tools.cli import main

    path = tmp_path / "checkpoint1.pt"
    if content == "truncated":  # the first half of a real torch file
        torch.save({"model": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    args = {"show": [path], "import-profile": [path, tmp_path / "o.json"], "fold": [path, tmp_path / "o.pt"],
            "average": [tmp_path, "--last", "1", "--output", tmp_path / "o.pt"], "score": [path],
            "recipe": [path, "admin-6-6"]}[command]
    assert main([command, *map(str, args)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fairseq-admin: error:") and str(path) in err[0], err
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "o.pt").exists()


@pytest.mark.parametrize("value,code", [
    ("__import__('os').system('touch x') or [(32, 3)]", True), ("[(512, 3)] * 20", False),
    ("[(512, 3)] * 9 + [(1024, 3)] * 4", False), ("(0.9, 0.98)", False), ("checkpoint_best.pt", False),
    ("/data/bin:/data/bin2", False), ("translation", False), ("exec('x')", True), ("().__class__", True),
    ("[x for x in os.popen('ls')]", True), ("f'{print(1)}'", True), ("1e-3", False), ("(", False),
])
def test_code_in_config_strings(value, code):
    from fairseq_admin.checkpoints import code_in_string
    assert code_in_string(value) is code


def test_every_fairseq_architecture_default_config_passes_the_guard():
    """The check refuses no configuration that fairseq's own architectures produce (their layer specs,
    betas, cutoffs): each architecture's defaults, as a checkpoint would store them."""
    import argparse

    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    from fairseq_admin.checkpoints import unsafe_config_field

    checked = 0
    for arch, model_cls in sorted(ARCH_MODEL_REGISTRY.items()):
        parser = argparse.ArgumentParser()
        try:
            model_cls.add_args(parser)
            args = parser.parse_args([])
            ARCH_CONFIG_REGISTRY[arch](args)
        except Exception:  # noqa: BLE001 -- a few models need task options to list their defaults
            continue
        assert unsafe_config_field({"args": args, "cfg": {"model": args}}) is None, arch
        checked += 1
    assert checked > 100  # fconv, lightconv, transformer, wav2vec, ... and the plugin's own


def test_code_in_a_checkpoint_config_is_refused_before_the_model_is_built(bin_data, tmp_path):
    """A checkpoint with no unsafe type but an fconv layer spec that runs code: fairseq-generate without the
    guard runs it (the threat is real); with the plugin, and by fold and average, it is refused in one line."""
    save = tmp_path / "fconv"
    for _ in range(3):  # stock fairseq's fconv run was seen once to abort at exit ("terminate called without an
        # active exception", SIGABRT) after its checkpoint: what this test needs is the checkpoint
        proc = run_cli("fairseq_cli.train", bin_data, "--arch", "fconv", "--encoder-layers", "[(32, 3)]",
                       "--decoder-layers", "[(32, 3)]", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
                       "--decoder-out-embed-dim", "32", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000",
                       "--max-update", "1", "--save-dir", save, "--no-progress-bar", "--num-workers", "0", "--cpu",
                       check=False)
        if (save / "checkpoint_last.pt").exists():
            break
    assert (save / "checkpoint_last.pt").exists(), proc.stderr[-3000:]
    state = torch.load(save / "checkpoint_last.pt", weights_only=False)
    marker = tmp_path / "MARKER"
    evil = f"__import__('os').system('touch {marker}') or [(32, 3)]"
    model_cfg = state["cfg"]["model"]
    if isinstance(model_cfg, dict):
        model_cfg["encoder_layers"] = evil
    else:
        model_cfg.encoder_layers = evil
    crafted = tmp_path / "crafted.pt"
    torch.save(state, crafted)

    common = [bin_data, "--path", crafted, "--gen-subset", "valid", "--max-sentences", "4", "--cpu", "--quiet"]
    # stock fairseq (its Namespace needs torch's unsafe switch without the plugin's allowlist): the code runs
    proc = run_cli("fairseq_cli.generate", *common, check=False, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert marker.exists(), proc.stderr[-2000:]
    marker.unlink()
    proc = run_cli("fairseq_cli.generate", *common, "--user-dir", USER_DIR, check=False)
    assert proc.returncode != 0 and not marker.exists()
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq-admin: error:") and "model.encoder_layers" in last and "FAIRSEQ_ADMIN_TRUST_CHECKPOINT=1" in last
    assert "Traceback" not in proc.stderr
    for args in (["fold", crafted, tmp_path / "f.pt"],):
        proc = run_cli("fairseq_admin.tools.cli", *args, check=False)
        assert proc.returncode != 0 and "model.encoder_layers" in proc.stderr and not marker.exists(), proc.stderr[-2000:]
    os.makedirs(tmp_path / "avg")
    for epoch in (1, 2):
        torch.save(state, tmp_path / "avg" / f"checkpoint{epoch}.pt")
    proc = run_cli("fairseq_admin.tools.cli", "average", tmp_path / "avg", "--last", "2", "--output", tmp_path / "a.pt",
                   check=False)
    assert proc.returncode != 0 and "model.encoder_layers" in proc.stderr and not (tmp_path / "a.pt").exists()
    # trusted on purpose: the variable lets it through (and the code runs, as the user asked)
    proc = run_cli("fairseq_cli.generate", *common, "--user-dir", USER_DIR, check=False,
                   env={"FAIRSEQ_ADMIN_TRUST_CHECKPOINT": "1"})
    assert marker.exists()


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint\n", random.Random(1).randbytes(4000)],
                         ids=["empty", "text", "random-bytes"])
def test_empty_or_text_file_as_checkpoint_is_one_line(bin_data, tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    # every content through fairseq-generate; the other loaders (same guard) with one content
    loaders = [("fairseq_cli.generate", [], None)] + ([("fairseq_cli.interactive", [], "hallo\n")] if not content else [])
    for module, extra, stdin in loaders:
        proc = subprocess.run([sys.executable, "-m", module, bin_data, "--user-dir", USER_DIR, "--path", str(path),
                               "--cpu", *extra], input=stdin, capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert f"{path} is not a readable checkpoint: it is {'empty' if not content else 'truncated'}" in last, last
    if not content:
        proc = run_cli("fairseq_admin.tools.cli", "fold", path, tmp_path / "out.pt", check=False)
        assert proc.returncode != 0 and "is not a readable checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_unreadable_means_raised_while_torch_read_the_file(tmp_path):
    # the classification behind both one-liners: an error of other code (fairseq's, after the read) is not
    # called a bad file, nor is a disk error; a directory gets its own line
    from fairseq_admin.checkpoints import is_unreadable_file, load_checkpoint
    path = tmp_path / "model.pt"
    for content in (b"", random.Random(1).randbytes(4000), b"hello\n"):  # fairseq-admin fold's and average's loader
        path.write_bytes(content)
        with pytest.raises(AdminError, match="is not a readable checkpoint") as info:
            load_checkpoint(str(path))
    assert is_unreadable_file(info.value.__context__, str(path))
    for exc in (KeyError("args"), RuntimeError("PytorchStreamReader failed"), PermissionError(13, "denied")):
        assert not is_unreadable_file(exc, str(path))
    with pytest.raises(AdminError, match="is a directory, not a checkpoint"):
        load_checkpoint(str(tmp_path))
