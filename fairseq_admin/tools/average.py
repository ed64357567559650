"""Checkpoint averaging (fairseq's scripts/average_checkpoints.py is not part of its wheel).

Averages every floating-point tensor of the models' state dicts (ω included, so the average needs no
profile file), keeps the rest of the newest checkpoint, and writes the result atomically.
"""
import collections
import os
import re
from typing import List, Optional

import torch

from ..errors import AdminError
from ..checkpoints import load_checkpoint
from ..files import atomic_write


def last_epoch_checkpoints(folder: str, count: int, upper_epoch: Optional[int] = None,
                           allow_fewer: bool = False) -> List[str]:
    """The ``count`` epoch checkpoints (checkpointN.pt) of ``folder`` with the highest N <= ``upper_epoch``
    (the reference averages epochs 81-90 of IWSLT14, 91-100 of WMT14). Fewer than ``count`` found is an
    error unless ``allow_fewer``."""
    if count < 1:
        raise AdminError(f"--last must be at least 1, got {count}")
    if not os.path.isdir(folder):
        raise AdminError(f"no checkpoint folder {folder}")
    epochs = sorted((int(m.group(1)) for f in os.listdir(folder) if (m := re.fullmatch(r"checkpoint(\d+)\.pt", f))),
                    reverse=True)
    if not epochs:
        raise AdminError(f"no epoch checkpoints (checkpointN.pt) in {folder}: train without "
                         "--no-epoch-checkpoints to average them")
    chosen = [e for e in epochs if upper_epoch is None or e <= upper_epoch][:count]
    if len(chosen) < count and not allow_fewer:
        bound = f" up to epoch {upper_epoch}" if upper_epoch is not None else ""
        raise AdminError(f"{folder} has {len(chosen)} epoch checkpoint(s){bound} "
                         f"({', '.join(map(str, sorted(chosen))) or 'none'}), not the {count} asked for: train longer, "
                         "or pass --allow-fewer to average what is there")
    return [os.path.join(folder, f"checkpoint{e}.pt") for e in sorted(chosen)]


def last_update_checkpoints(folder: str, count: int, upper_update: Optional[int] = None,
                            allow_fewer: bool = False) -> List[str]:
    """The ``count`` interval checkpoints (checkpoint_E_U.pt, written by --save-interval-updates) of
    ``folder`` with the highest update U <= ``upper_update``."""
    if count < 1:
        raise AdminError(f"--last must be at least 1, got {count}")
    if not os.path.isdir(folder):
        raise AdminError(f"no checkpoint folder {folder}")
    found = {int(m.group(2)): f for f in os.listdir(folder) if (m := re.fullmatch(r"checkpoint_(\d+)_(\d+)\.pt", f))}
    if not found:
        raise AdminError(f"no interval checkpoints (checkpoint_E_U.pt) in {folder}: train with "
                         "--save-interval-updates N (and --keep-interval-updates at least --last)")
    chosen = sorted((u for u in found if upper_update is None or u <= upper_update), reverse=True)[:count]
    if len(chosen) < count and not allow_fewer:
        bound = f" up to update {upper_update}" if upper_update is not None else ""
        raise AdminError(f"{folder} has {len(chosen)} interval checkpoint(s){bound} "
                         f"(updates {', '.join(map(str, sorted(chosen))) or 'none'}), not the {count} asked for: "
                         "train longer, or pass --allow-fewer to average what is there")
    return [os.path.join(folder, found[u]) for u in sorted(chosen)]


def average_checkpoints(paths: List[str], output: str, trust: bool = False) -> None:
    """Average the model parameters of ``paths``; write a loadable fairseq checkpoint to ``output``."""
    if not paths:
        raise AdminError("nothing to average")
    total, newest = collections.OrderedDict(), None
    for path in paths:
        state = load_checkpoint(path, trust)
        newest = newest or state
        model = state["model"]
        if total and set(model) != set(total):
            raise AdminError(f"{path} has other parameters than {paths[0]}: not the same model")
        for k, v in model.items():
            if k in total and tuple(total[k].shape) != tuple(v.shape):
                raise AdminError(f"{path} is not the same model as {paths[0]}: its {k} has shape {tuple(v.shape)}, "
                                 f"not {tuple(total[k].shape)} (another width or vocabulary); average checkpoints "
                                 "of one run")
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
