"""Run by test_distributed.py: 2 CPU processes (gloo) build the same Admin model through
TranslationAdminTask.build_model, each from a DIFFERENT random initialisation, and report ω."""
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, data, out, port):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from conftest import build

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    # seed differs per rank: a rank that profiled on its own would find other ω
    _, task, model = build(data, "--save-dir", out, seed=100 + rank)
    omegas = torch.cat([s.omega.detach() for st in ("encoder", "decoder") for s in model.residual_scales(st)])
    torch.save({"omegas": omegas, "wrote": task.profile_written}, os.path.join(out, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    data, out, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mp.spawn(worker, args=(data, out, port), nprocs=2, join=True)
