"""Checkpoints load weights-only: a crafted checkpoint whose unpickling would run code is refused by
fairseq-generate, fold and average (one line, nothing executed); importing the plugin switches no
process-wide safety off."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, USER_DIR, run_cli


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
