"""The benchmark scripts in their quick modes, on the tests' small real-data sample."""
import os
import re
import subprocess

from conftest import ROOT


def _bash(*args, **env):
    proc = subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, **{k: str(v) for k, v in env.items()}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_stability_quick(bin_data, tmp_path):
    out = _bash("benchmarks/stability_cpu.sh", "--quick", BIN=bin_data, OUT=tmp_path)
    rows = {l.split()[0]: l for l in out.splitlines() if l.split() and l.split()[0].endswith("-seed1")}
    assert set(rows) == {"postln-seed1", "preln-seed1", "admin-seed1", "deepnorm-seed1"}
    for row in rows.values():  # validation at updates 3 and 6, a finite best loss, words/s
        assert re.search(r"3:\d+\.\d+ 6:\d+\.\d+", row) and "nan" not in row
    assert (tmp_path / "summary.txt").exists()


def test_throughput_quick(bin_data):
    out = _bash("benchmarks/throughput_cpu.sh", bin_data, 4)
    ratio = float(re.search(r"admin/stock words/s ratio: ([\d.]+)", out).group(1))
    assert 0.3 < ratio < 3.0
