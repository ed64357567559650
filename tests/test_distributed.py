"""Several processes: rank 0 profiles, every rank ends with identical ω, exactly one writer."""
import os
import socket
import subprocess
import sys

import torch

from conftest import ROOT, build


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_share_rank0_profile(bin_data, tmp_path):
    worker = os.path.join(ROOT, "tests", "dist_worker.py")
    proc = subprocess.run([sys.executable, worker, bin_data, str(tmp_path), str(_free_port())],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(r0["omegas"], r1["omegas"])  # identical, bit for bit
    assert [r0["wrote"], r1["wrote"]] == [True, False]  # a single writer
    assert (tmp_path / "admin_profile.json").exists()
    # rank 1 alone (its own initialisation) would have found different ω
    _, _, alone = build(bin_data, seed=101)
    own = torch.cat([s.omega.detach() for st in ("encoder", "decoder") for s in alone.residual_scales(st)])
    assert not torch.equal(own, r1["omegas"])
