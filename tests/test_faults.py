"""Fault injection: SIGKILL a step of the chain in the middle of its work, rerun it, and the final outputs
are identical to those of an uninterrupted run (checksums; training: every parameter equal)."""
import hashlib
import json
import shlex
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_killed_when as _run_killed_when, train_args, write_sample
from fairseq_admin.checkpoints import load_checkpoint
from fairseq_admin.files import PAUSE_BEFORE_RENAME


def _run(cmd):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _checksums(folder, skip=("preprocess.log",)):
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name not in skip and not name.endswith(".stamp"):
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _hidden_tmp(folder):
    return lambda: os.path.isdir(folder) and any(n.startswith(".") and n.endswith(".tmp") for n in os.listdir(folder))


def test_killed_prepare_and_binarize_rerun_to_identical_outputs(tmp_path):
    raw = write_sample(tmp_path / "raw", {"train": 6000, "valid": 100, "test": 100})
    cmd = lambda out: ["bash", "scripts/prepare_custom.sh", str(raw), str(out), "de", "en", "1000", "--lowercase"]
    clean = tmp_path / "clean"
    _run(cmd(clean))
    out = tmp_path / "faulty"
    # killed while tokenizing the training text, then while fairseq-preprocess writes, each time rerun
    _run_killed_when(cmd(out), _hidden_tmp(out / "prep" / "tok"))
    _run(cmd(out))
    os.remove(out / "bin" / ".done")  # make binarize run again, then kill it in the middle
    _run_killed_when(cmd(out), lambda: (out / "bin.tmp" / "dict.de.txt").exists())
    _run(cmd(out))
    for part in ("prep", "bin"):
        expected, got = _checksums(clean / part), _checksums(out / part)
        assert got == expected and len(expected) > 10, set(got) ^ set(expected)
    assert not any(n.endswith(".tmp") for _, _, files in os.walk(out) for n in files)


def test_killed_training_resumes_to_the_same_parameters(bin_data, tmp_path):
    extra = ["--save-interval-updates", "8", "--no-epoch-checkpoints", "--cpu"]
    cmd = lambda save: [sys.executable, "-m", "fairseq_cli.train", *train_args(bin_data, str(save), *extra, updates=16)]
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    _run(cmd(clean))
    # killed after its first mid-epoch checkpoint (update 8), then rerun: resumes there, not re-profiled
    _run_killed_when(cmd(faulty), lambda: (faulty / "checkpoint_last.pt").exists())
    profile = (faulty / "admin_profile.json").read_bytes()
    _run(cmd(faulty))
    assert (faulty / "admin_profile.json").read_bytes() == profile  # not re-profiled on resume

    def content(path):  # all but the creation time
        return {k: v for k, v in json.loads(path.read_text()).items() if k != "created"}
    assert content(faulty / "admin_profile.json") == content(clean / "admin_profile.json")
    a, b = load_checkpoint(str(clean / "checkpoint_last.pt")), load_checkpoint(str(faulty / "checkpoint_last.pt"))
    assert a["extra_state"]["train_iterator"]["iterations_in_epoch"] == b["extra_state"]["train_iterator"]["iterations_in_epoch"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_killed_profile_step_reruns_to_the_same_profile(bin_data, tmp_path):
    # the recipe's profile step (fairseq-train --admin-profile-only), killed with its profile written but
    # not yet renamed into place: no profile is left, and the rerun writes the one an uninterrupted run writes
    cmd = lambda prof: [sys.executable, "-m", "fairseq_cli.train",
                        *train_args(bin_data, str(tmp_path / "ck"), "--cpu", "--admin-profile-only",
                                    "--admin-profile", str(prof))]
    clean, faulty = tmp_path / "clean.json", tmp_path / "p" / "admin_profile.json"
    _run(cmd(clean))
    _run_killed_when(cmd(faulty), _hidden_tmp(str(faulty.parent)), env={PAUSE_BEFORE_RENAME: faulty.name})
    assert not faulty.exists()
    _run(cmd(faulty))

    def content(path):  # all but the creation time
        return {k: v for k, v in json.loads(path.read_text()).items() if k != "created"}
    assert content(faulty) == content(clean)
    assert os.listdir(faulty.parent) == [faulty.name]  # the killed run's temporary is gone


def test_killed_average_reruns_to_the_same_checkpoint(tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    g = torch.Generator().manual_seed(0)
    for e in range(1, 5):
        torch.save({"model": {"w": torch.randn(64, 64, generator=g), "omega": torch.rand(3, generator=g)},
                    "cfg": None}, ck / f"checkpoint{e}.pt")
    cmd = lambda out: [sys.executable, "-m", "fairseq_admin.tools.cli", "average", str(ck), "--last", "3",
                       "--output", str(out)]
    clean, faulty = tmp_path / "clean.pt", tmp_path / "avg" / "checkpoint_avg.pt"
    _run(cmd(clean))
    _run_killed_when(cmd(faulty), _hidden_tmp(str(faulty.parent)), env={PAUSE_BEFORE_RENAME: faulty.name})
    assert not faulty.exists()
    _run(cmd(faulty))
    a, b = load_checkpoint(str(clean)), load_checkpoint(str(faulty))
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert os.listdir(faulty.parent) == [faulty.name]


def test_one_trainer_per_save_dir_and_a_dead_holders_lock_is_taken_over(bin_data, tmp_path):
    import signal
    import time

    save = tmp_path / "run"
    lock = save / ".fairseq-admin.lock"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen([sys.executable, "-m", "fairseq_cli.train", *train_args(bin_data, str(save), "--seed", "1",
                                                                                     updates=100000)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text().startswith("pid")):
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.1)
        second = subprocess.run([sys.executable, "-m", "fairseq_cli.train", *train_args(bin_data, str(save), "--seed", "7")],
                                cwd=ROOT, capture_output=True, text=True, env=env)
        assert second.returncode != 0 and "Traceback" not in second.stderr
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith("fairseq-admin: error:") and f"pid {first.pid} on" in last and "another --save-dir" in last
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # the holder died (SIGKILL, its lock file left behind): the next trainer takes the lock over and trains
    third = subprocess.run([sys.executable, "-m", "fairseq_cli.train", *train_args(bin_data, str(save), "--seed", "1",
                                                                                   updates=2)],
                           cwd=ROOT, capture_output=True, text=True, env=env)
    assert third.returncode == 0, third.stderr[-2000:]


def test_a_restore_file_typo_is_refused_when_the_save_dir_holds_a_run(bin_data, tmp_path):
    save = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "fairseq_cli.train", *train_args(bin_data, str(save), updates=2)],
                   cwd=ROOT, check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    before = {p.name: p.read_bytes() for p in save.iterdir() if p.is_file() and p.suffix in (".pt", ".json")}
    proc = subprocess.run([sys.executable, "-m", "fairseq_cli.train",
                           *train_args(bin_data, str(save), "--restore-file", str(save / "typo.pt"), updates=4)],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "--restore-file" in last and "typo.pt does not exist" in last and "checkpoint_last.pt" in last
    assert {p.name: p.read_bytes() for p in save.iterdir() if p.is_file() and p.suffix in (".pt", ".json")} == before


def test_resuming_with_another_depth_or_width_is_one_line(bin_data, tmp_path):
    save = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "fairseq_cli.train", *train_args(bin_data, str(save), updates=2)],
                   cwd=ROOT, check=True, capture_output=True, env=env)
    for change, named in ((["--encoder-layers", "3"], "2-2 layers, this model 3-2"),
                          (["--encoder-embed-dim", "48", "--decoder-embed-dim", "48"], "1000x32 there, 1000x48 here")):
        proc = subprocess.run([sys.executable, "-m", "fairseq_cli.train", *train_args(bin_data, str(save), *change, updates=4)],
                              cwd=ROOT, capture_output=True, text=True, env=env)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("fairseq-admin: error: cannot resume from") and named in last, last


def test_fairseqs_checkpoint_copy_is_atomic(tmp_path, monkeypatch):
    # fairseq saves checkpoint_E_U.pt atomically, then copies it onto checkpoint_last.pt: a disk that fills
    # up during that copy must leave the previous checkpoint_last.pt as it was
    import errno
    import shutil

    import fairseq_admin  # noqa: F401  (installs the atomic copy)
    from fairseq.file_io import PathManager

    src, dst = tmp_path / "checkpoint_1_10.pt", tmp_path / "checkpoint_last.pt"
    src.write_bytes(b"new" * 1000)
    dst.write_bytes(b"old state")
    real = shutil.copyfile

    def full_disk(a, b, *args, **kwargs):
        with open(b, "wb") as f:
            f.write(b"ne")  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(b))

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with pytest.raises(OSError):
        PathManager.copy(str(src), str(dst), overwrite=True)
    assert dst.read_bytes() == b"old state" and sorted(p.name for p in tmp_path.iterdir()) == [src.name, dst.name]
    monkeypatch.setattr(shutil, "copyfile", real)
    assert PathManager.copy(str(src), str(dst), overwrite=True)
    assert dst.read_bytes() == src.read_bytes()


def test_full_disk_during_checkpoint_save_is_one_line(bin_data, tmp_path):
    # a file-size limit makes every write past 64 KiB fail as a full disk would (EFBIG; Python ignores SIGXFSZ)
    save = tmp_path / "ck"
    cmd = " ".join(shlex.quote(str(a)) for a in [sys.executable, "-m", "fairseq_cli.train",
                                                *train_args(bin_data, str(save), "--cpu", updates=2)])
    proc = subprocess.run(["bash", "-c", f"ulimit -f 64; exec {cmd}"], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq-admin: error: could not write") and "free space" in last, proc.stderr[-3000:]
    assert not (save / "checkpoint_last.pt").exists()


def test_dangling_symlink_as_save_dir_is_one_line(bin_data, tmp_path):
    link = tmp_path / "save"
    link.symlink_to(tmp_path / "nowhere")
    proc = subprocess.run([sys.executable, "-m", "fairseq_cli.train", *train_args(bin_data, str(link), "--cpu", updates=1)],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"fairseq-admin: error: {link} is a symbolic link to {tmp_path / 'nowhere'}, which does not exist: "
        "create that folder, or remove the link (or give another --save-dir)")


def test_disk_and_permission_errors_are_one_line(capsys):
    # as root no permission is ever refused here, and no disk fills up on demand: the hook itself, per errno
    import errno

    from fairseq_admin.errors import _excepthook
    for code, expected in ((errno.EACCES, "no permission for /d/f: Permission denied; make it readable"),
                           (errno.EROFS, "could not write /d/f: Read-only file system; free space (or make"),
                           (errno.ENOSPC, "could not write /d/f: No space left on device; free space")):
        _excepthook(OSError, OSError(code, os.strerror(code), "/d/f"), None)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"fairseq-admin: error: {expected}"), err
