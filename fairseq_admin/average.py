"""Checkpoint averaging (fairseq's scripts/average_checkpoints.py is not part of its wheel).

Averages every floating-point tensor of the models' state dicts (ω included, so the average needs no
profile file), keeps the rest of the newest checkpoint, and writes the result atomically.
"""
import collections
import os
import re
from typing import List

import torch

from .errors import AdminError
from .files import atomic_write


def last_epoch_checkpoints(folder: str, count: int) -> List[str]:
    """The ``count`` checkpoints with the highest epoch numbers (checkpointN.pt) in ``folder``."""
    if not os.path.isdir(folder):
        raise AdminError(f"no checkpoint folder {folder}")
    found = sorted(((int(m.group(1)), f) for f in os.listdir(folder)
                    if (m := re.fullmatch(r"checkpoint(\d+)\.pt", f))), reverse=True)
    if not found:
        raise AdminError(f"no epoch checkpoints (checkpointN.pt) in {folder}: train without "
                         "--no-epoch-checkpoints to average them")
    return [os.path.join(folder, f) for _, f in found[:count]]


def average_checkpoints(paths: List[str], output: str) -> None:
    """Average the model parameters of ``paths``; write a loadable fairseq checkpoint to ``output``."""
    if not paths:
        raise AdminError("nothing to average")
    total, newest = collections.OrderedDict(), None
    for path in paths:
        try:  # fairseq checkpoints hold argparse/omegaconf objects: trusted files only
            state = torch.load(path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError) as e:
            raise AdminError(f"cannot read checkpoint {path}: {e}")
        newest = newest or state
        model = state["model"]
        if total and set(model) != set(total):
            raise AdminError(f"{path} has other parameters than {paths[0]}: not the same model")
        for k, v in model.items():
            if not v.is_floating_point():
                total.setdefault(k, v)
                continue
            v = v.double()
            total[k] = total[k] + v if k in total else v
    averaged = collections.OrderedDict()
    for k, v in total.items():
        dtype = newest["model"][k].dtype
        averaged[k] = (v / len(paths)).to(dtype) if v.is_floating_point() else v
    out = dict(newest)
    out["model"] = averaged
    atomic_write(output, lambda tmp: torch.save(out, tmp))
