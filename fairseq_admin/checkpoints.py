"""Loading fairseq checkpoints safely: torch's weights-only unpickler, with exactly the types that
fairseq checkpoints hold added to its allowlist, instead of switching safety off for the process.

fairseq 0.12 stores its config as plain containers plus an ``argparse.Namespace`` (model args);
older checkpoints hold omegaconf containers, and numpy scalars can appear in the trainer's state.
Anything else (a class whose unpickling could run code) is refused with one line; a user who trusts a
file can load it anyway: ``--trust-checkpoint`` for this plugin's commands, or torch's own
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` set for a single fairseq command.
"""
import argparse
import pickle
import re
from typing import List

from .errors import AdminError

TRUST_HINT = ("if you trust this file, load it anyway with --trust-checkpoint (fairseq-admin commands) or "
              "by setting TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 for that one fairseq command")


def fairseq_checkpoint_types() -> List[object]:
    """The non-tensor types found in fairseq checkpoints: data containers, no code."""
    import numpy as np

    types = [argparse.Namespace, np.dtype, type(np.dtype("float64")), type(np.dtype("float32")),
             type(np.dtype("int64")), type(np.dtype("int32")), type(np.dtype("bool"))]
    try:  # numpy >= 2 moved the scalar reconstructor
        from numpy._core.multiarray import scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    types.append(scalar)
    try:
        import typing

        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, StringNode
        types += [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, BooleanNode, FloatNode,
                  IntegerNode, StringNode, typing.Any]
    except ImportError:  # pragma: no cover - omegaconf comes with fairseq
        pass
    return types


def allow_fairseq_checkpoint_types() -> None:
    """Add fairseq's checkpoint types to torch's weights-only allowlist (loads stay weights-only)."""
    import torch

    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(fairseq_checkpoint_types())


def refused_global(exc: BaseException) -> str:
    """The type named by torch's weights-only refusal, or '' if ``exc`` is not one."""
    if not isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" not in str(exc):
        return ""
    # torch words it "Unsupported global: GLOBAL x.y ..." or "Trying to load unsupported GLOBAL x.y whose module ..."
    m = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return m.group(1) if m else ""


def load_checkpoint(path: str, trust: bool = False):
    """torch.load a fairseq checkpoint to the CPU, weights-only unless ``trust``; one-line errors."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except FileNotFoundError:
        raise AdminError(f"no checkpoint {path}")
    except pickle.UnpicklingError as e:
        name = refused_global(e)
        if name:
            raise AdminError(f"{path} was refused: it holds {name}, which fairseq checkpoints do not contain "
                             f"and whose loading could run code; {TRUST_HINT}")
        raise AdminError(f"{path} is not a readable checkpoint: it is truncated or not a torch file; use "
                         "another one (e.g. --restore-file checkpoint_best.pt)")
    except (RuntimeError, EOFError, OSError):
        raise AdminError(f"{path} is not a readable checkpoint: it is truncated or not a torch file; use "
                         "another one (e.g. --restore-file checkpoint_best.pt)")
