"""Loading fairseq checkpoints safely: torch's weights-only unpickler, with exactly the types that
fairseq checkpoints hold added to its allowlist, instead of switching safety off for the process.

fairseq 0.12 stores its config as plain containers plus an ``argparse.Namespace`` (model args);
older checkpoints hold omegaconf containers, and numpy scalars can appear in the trainer's state.
Anything else (a class whose unpickling could run code) is refused with one line; a user who trusts a
file can load it anyway: ``--trust-checkpoint`` for this plugin's commands, or torch's own
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` set for a single fairseq command.
"""
import argparse
import ast
import functools
import os
import pickle
import re
from typing import Iterator, List, Optional, Tuple

from .errors import AdminError

#: set to 1 for one fairseq command to load a trusted checkpoint whose config holds Python code
TRUST_ENV = "FAIRSEQ_ADMIN_TRUST_CHECKPOINT"
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
        state = torch.load(path, map_location="cpu", weights_only=not trust)
    except FileNotFoundError:
        raise AdminError(f"no checkpoint {path}")
    except IsADirectoryError:
        raise AdminError(f"{path} is a directory, not a checkpoint: give a .pt file in it")
    except Exception as e:
        name = refused_global(e)
        if name:
            raise AdminError(f"{path} was refused: it holds {name}, which fairseq checkpoints do not contain "
                             f"and whose loading could run code; {TRUST_HINT}")
        if not is_unreadable_file(e, path):
            raise
        raise AdminError(unreadable_message(path)) from None
    if not trust:
        check_config(state, path)
    return state


def is_unreadable_file(exc: BaseException, path: str) -> bool:
    """Whether ``exc`` means that the existing file ``path`` is not a readable checkpoint (empty,
    truncated, a text file, random bytes: unpickling garbage raises almost any exception type): an
    exception raised inside torch.load, other than a disk error (OSError, left to the excepthook's line)
    and a refused type (its own message). The one classification of load_checkpoint and of the guard on
    fairseq's loader, which must not mistake an error of fairseq's own code after the read for a bad file."""
    if not isinstance(exc, Exception) or isinstance(exc, OSError) or refused_global(exc) \
            or not os.path.isfile(path):
        return False
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(os.path.join("torch", "serialization.py")):
            return True
        tb = tb.tb_next
    return False


def unreadable_message(path: str) -> str:
    """The one line for a file that torch cannot read as a checkpoint."""
    try:
        empty = os.path.getsize(path) == 0
    except OSError:
        empty = False
    what = "it is empty" if empty else "it is truncated or corrupted, or not a torch file"
    return (f"{path} is not a readable checkpoint: {what}; if it is the checkpoint_last.pt of an interrupted "
            "run, delete it or resume from another one with --restore-file checkpoint_best.pt (or a checkpointN.pt); "
            "else give a .pt file that fairseq-train or fairseq-admin average wrote")


# --- config strings that fairseq evaluates ------------------------------------------------------------
# fairseq runs some configuration strings through eval() when it builds a model (fconv's layer specs,
# utils.eval_str_list for options such as adaptive_softmax_cutoff, the optimizers' betas, ...): a
# checkpoint whose config holds a call there runs code although it holds no unsafe type. A string is
# refused if it parses as a Python expression containing a call or a dunder name or attribute; literals,
# names and the list/tuple arithmetic of fairseq's own layer specs ("[(512, 3)] * 20") pass.


def code_in_string(value: str) -> bool:
    """Whether ``value`` would run code (a call, or reach dunders) if fairseq eval()'d it."""
    if "(" not in value and "__" not in value:
        return False  # no call is possible without a parenthesis; fast path for paths, names, numbers
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False  # eval would fail before running anything
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            return True
        if isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            return True
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            return True
    return False


def _strings(obj, where: str, depth: int = 0) -> Iterator[Tuple[str, str]]:
    """(dotted field, string value) of every string in a checkpoint's config (dicts, lists, Namespaces,
    omegaconf containers)."""
    if depth > 50:
        return
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    else:
        try:
            from omegaconf import DictConfig, ListConfig, OmegaConf
            if isinstance(obj, (DictConfig, ListConfig)):
                obj = OmegaConf.to_container(obj, resolve=False)
        except ImportError:  # pragma: no cover - omegaconf comes with fairseq
            pass
    if isinstance(obj, str):
        yield where, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{where}[{i}]", depth + 1)


def unsafe_config_field(state) -> Optional[Tuple[str, str]]:
    """The first (field, value) of a loaded checkpoint's cfg/args that holds code, or None."""
    if not isinstance(state, dict):
        return None
    for key in ("cfg", "args"):
        for field, value in _strings(state.get(key), key):
            if code_in_string(value):
                return field, value
    return None


def check_config(state, path: str) -> None:
    """Refuse (one line) a checkpoint whose config holds code that fairseq would evaluate."""
    found = unsafe_config_field(state)
    if found:
        field, value = found
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise AdminError(f"{path} was refused: its config {field} = {shown!r} is Python code, which fairseq would "
                         f"run (eval) while building the model; if you trust this file, load it anyway with "
                         f"--trust-checkpoint (fairseq-admin commands) or by setting {TRUST_ENV}=1 for that one "
                         "fairseq command")


# --- the plugin's only two patches of fairseq internals, both here -------------------------------------

def install_config_guard() -> None:
    """Check every checkpoint fairseq loads (fairseq-generate, -interactive, -validate, -eval-lm, -train's
    resume, the hub's from_pretrained) before any model is built from it.

    Patch 1 of 2: fairseq has no hook between reading a checkpoint
    and building its model, and every path goes through checkpoint_utils.load_checkpoint_to_cpu
    (looked up on the module at call time), so wrapping that function covers them all. It only adds a
    check; the loaded state is returned unchanged. Idempotent."""
    from fairseq import checkpoint_utils

    original = checkpoint_utils.load_checkpoint_to_cpu
    if getattr(original, "_fairseq_admin_guard", False):
        return

    @functools.wraps(original)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        try:
            state = original(path, *args, **kwargs)
        except Exception as exc:
            # an empty, truncated or text file: one line (a refused unsafe type keeps its own message)
            if not is_unreadable_file(exc, path):
                raise
            raise AdminError(unreadable_message(path)) from None
        if os.environ.get(TRUST_ENV) != "1":
            check_config(state, path)
        return state

    load_checkpoint_to_cpu._fairseq_admin_guard = True
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu


def install_atomic_checkpoint_copy() -> None:
    """Make fairseq's copies of a saved checkpoint (checkpoint_last.pt, checkpoint_best.pt, written by
    copying the file it has just saved) atomic: copy to a temporary name beside the target, then rename.

    Patch 2 of 2: fairseq writes the first checkpoint file atomically but copies it onto the others in place
    (file_io.PathManager.copy), so a full disk during that copy leaves a truncated checkpoint_last.pt
    and the previous good one is gone. No hook exists for it; the wrapper changes nothing but where the
    bytes go first, only for local files (remote ioPath handlers are left as they are). Idempotent."""
    from fairseq.file_io import PathManager

    original = PathManager.copy
    if getattr(original, "_fairseq_admin_atomic", False):
        return

    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if not PathManager.supports_rename(dst_path) or (os.path.exists(dst_path) and not overwrite):
            return original(src_path, dst_path, overwrite=overwrite)
        tmp = os.path.join(os.path.dirname(dst_path) or ".", f".{os.path.basename(dst_path)}.{os.getpid()}.tmp")
        try:
            result = original(src_path, tmp, overwrite=True)
            os.replace(tmp, dst_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return dst_path if isinstance(result, str) else (True if result is None else result)

    copy._fairseq_admin_atomic = True
    PathManager.copy = staticmethod(copy)
