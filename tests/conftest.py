"""Shared fixtures: a small binarized sample of the bundled real De-En corpus, CLI runners."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DIR = os.path.join(ROOT, "fairseq_admin")
SAMPLE = os.path.join(ROOT, "data", "de-en-libreoffice-sample")

# a tiny Admin model: 2+2 layers, width 32
TINY = ["--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "32",
        "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--share-all-embeddings"]


def run_cli(module, *args, check=True, env=None):
    """Run a fairseq CLI (fairseq_cli.MODULE) or fairseq_admin.tools.cli in a fresh process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def run_killed_when(cmd, ready, timeout=300, env=None):
    """Start ``cmd`` (in ROOT); SIGKILL its whole process group as soon as ``ready()`` holds. The step must
    really have been killed (not have finished first), else a fault-injection test would inject nothing."""
    import signal
    import time

    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"{cmd} ended (exit {proc.returncode}) before the fault could be injected"
        assert time.time() < deadline, "timed out waiting for the kill point"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def train_args(data, save_dir, *extra, updates=12):
    return [data, "--user-dir", USER_DIR, "--task", "translation_admin", "--arch", "admin_transformer",
            *TINY, "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000", "--max-update",
            str(updates), "--save-dir", save_dir, "--no-progress-bar", "--log-interval", "5",
            "--seed", "7", "--num-workers", "0", *extra]


def write_sample(folder, sizes, lower=False):
    """folder/{split}.{de,en}: the first sizes[split] lines of the bundled corpus (lowercased if asked)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        for lang in ("de", "en"):
            with open(os.path.join(SAMPLE, f"{split}.{lang}"), encoding="utf-8") as f:
                lines = [next(f) for _ in range(n)]
            text = "".join(lines)
            (folder / f"{split}.{lang}").write_text(text.lower() if lower else text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def bin_data(tmp_path_factory):
    """2,000 train / 100 valid / 100 test pairs, lowercased, word-level, binarized with fairseq."""
    root = tmp_path_factory.mktemp("libreoffice")
    raw = write_sample(root / "raw", {"train": 2000, "valid": 100, "test": 100}, lower=True)
    dest = root / "bin"
    run_cli("fairseq_cli.preprocess", "--source-lang", "de", "--target-lang", "en",
            "--trainpref", raw / "train", "--validpref", raw / "valid", "--testpref", raw / "test",
            "--destdir", dest, "--joined-dictionary", "--nwordssrc", "1000", "--workers", "1")
    return str(dest)


def build(data, *extra, task="translation_admin", arch="admin_transformer", seed=7, tiny=TINY):
    """Build (cfg, task, model) in-process exactly as fairseq-train does."""
    import tempfile

    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [data, "--user-dir", USER_DIR, "--task", task,
                                                "--arch", arch, *tiny, "--max-tokens", "1000",
                                                "--seed", str(seed), "--cpu", "--save-dir", tempfile.mkdtemp(),
                                                *map(str, extra)])
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(seed)
    t = tasks.setup_task(cfg.task)
    return cfg, t, t.build_model(cfg.model)
