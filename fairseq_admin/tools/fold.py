"""Fold trained ω into the neighbouring weights: an Admin checkpoint becomes a plain fairseq
``transformer`` checkpoint that loads and generates without the plugin, with the same outputs.

Sublayer i reads r = LN_prev(z) = γ ⊙ n + b. Scaling the previous LayerNorm (γ, b) by ω makes the
shortcut ω ⊙ r, and dividing the input columns of the branch's first projections (q, k, v or fc1;
only q for cross-attention, whose keys and values read the encoder output) by ω gives the branch
back exactly r. The first sublayer of each stack reads the embeddings (shared, with fixed sinusoidal
positions), which cannot be scaled: the fold is exact only where those ω are 1, which
``--admin-fix-first-omega`` keeps during training (profiled ω start at 1 there).
"""
import logging
import re
from typing import Dict, List, Tuple

import torch

from ..checkpoints import load_checkpoint
from ..config import to_namespace
from ..errors import AdminError
from ..files import atomic_write

logger = logging.getLogger(__name__)

# per sublayer kind: (state-dict names of the LayerNorm that ends the sublayer, projections reading r)
_ENC = [("self_attn", "self_attn_layer_norm", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
        ("ffn", "final_layer_norm", ["fc1"])]
_DEC = [("self_attn", "self_attn_layer_norm", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
        ("encoder_attn", "encoder_attn_layer_norm", ["encoder_attn.q_proj"]),
        ("ffn", "final_layer_norm", ["fc1"])]
_TASK_KEYS_OF_ADMIN = ("admin_profile", "admin_profile_only", "admin_profile_skip_padding", "seed", "cpu",
                       "max_tokens", "batch_size", "required_batch_size_multiple", "update_ordered_indices_seed",
                       "grouped_shuffling", "skip_remainder_batch", "save_dir", "restore_file")


def _sublayers(model: Dict[str, torch.Tensor], stack: str) -> List[Tuple[str, str, List[str]]]:
    layers = sorted({int(m.group(1)) for k in model if (m := re.match(rf"{stack}\.layers\.(\d+)\.", k))})
    kinds = _ENC if stack == "encoder" else _DEC
    return [(f"{stack}.layers.{l}.{kind}_omega.omega", f"{stack}.layers.{l}.{ln}", [f"{stack}.layers.{l}.{p}" for p in projs])
            for l in layers for kind, ln, projs in kinds if f"{stack}.layers.{l}.{kind}_omega.omega" in model]


def fold_state_dict(model: Dict[str, torch.Tensor], atol: float = 0.0) -> Dict[str, torch.Tensor]:
    """A plain transformer state dict computing the same function as the Admin one."""
    out = {k: v.clone() for k, v in model.items() if not k.endswith("_omega.omega")}
    for stack in ("encoder", "decoder"):
        subs = _sublayers(model, stack)
        if not subs:
            raise AdminError(f"no Admin ω in the {stack}: is this an admin_transformer checkpoint?")
        first = model[subs[0][0]].double()
        if (first - 1).abs().max().item() > atol:
            raise AdminError(
                f"the first {stack} sublayer has ω != 1 (max |ω-1| = {(first - 1).abs().max().item():.3g}); it "
                "scales the embeddings, which cannot be folded exactly: train with --admin-fix-first-omega "
                "(profiled ω start at 1 there) to make the fold exact")
        prev_ln = None
        for omega_key, ln, projs in subs:
            omega = model[omega_key].double()
            if prev_ln is not None:  # scale the LayerNorm that produced this sublayer's input
                for part in ("weight", "bias"):
                    key = f"{prev_ln}.{part}"
                    out[key] = (model[key].double() * omega).to(model[key].dtype)
                for proj in projs:  # and give the branch back the unscaled input
                    key = f"{proj}.weight"
                    out[key] = (model[key].double() / omega).to(model[key].dtype)
            prev_ln = ln
    return out


def plain_containers(obj, where: str = "checkpoint"):
    """``obj`` with argparse.Namespace, omegaconf containers and numpy scalars turned into dicts, lists and
    Python numbers (what torch's weights-only unpickler accepts by default); tensors kept."""
    import argparse

    import numpy as np

    if isinstance(obj, torch.Tensor) or obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
        if isinstance(obj, (DictConfig, ListConfig)):
            obj = OmegaConf.to_container(obj, resolve=False)
    except ImportError:  # pragma: no cover - omegaconf comes with fairseq
        pass
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain_containers(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_containers(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, (np.dtype, torch.dtype, torch.device)):
        return str(obj)
    raise AdminError(f"fold: {where} holds a {type(obj).__name__}, which a plain checkpoint cannot: please report it")


def fold_checkpoint(path: str, output: str, atol: float = 0.0, trust: bool = False) -> None:
    """Write ``output``: the checkpoint at ``path`` as a plain fairseq transformer (no plugin needed)."""
    state = load_checkpoint(path, trust)
    state["model"] = fold_state_dict(state["model"], atol)
    state.pop("last_optimizer_state", None)  # refers to the ω parameters that are gone
    cfg = state.get("cfg")
    if cfg is None:
        raise AdminError(f"{path} has no 'cfg': checkpoints of fairseq < 0.10 are not supported")
    # a namespace (fairseq-train) or a dict (the dataclass config: fairseq-hydra-train, --arch admin_transformer):
    # stored as the namespace that stock fairseq's transformer is built from
    model_cfg = cfg["model"] = to_namespace(cfg["model"])
    for name in ("admin_init", "admin_omega_fixed", "admin_fix_first_omega", "weight_init"):
        if hasattr(model_cfg, name):
            delattr(model_cfg, name)
    model_cfg.arch, model_cfg._name = "transformer", "transformer"
    if getattr(model_cfg, "task", None) == "translation_admin":
        model_cfg.task = "translation"
    model_cfg.user_dir = None
    cfg["common"]["user_dir"] = None
    if cfg["task"].get("_name") == "translation_admin":
        cfg["task"] = {k: v for k, v in cfg["task"].items() if k not in _TASK_KEYS_OF_ADMIN}
        cfg["task"]["_name"] = "translation"
    # plain containers only (the model's namespace as a dict, numpy scalars as numbers): stock fairseq loads
    # the file with torch's default weights-only unpickler, no allowlist and no environment variable
    state = plain_containers(state)
    atomic_write(output, lambda tmp: torch.save(state, tmp))
    logger.info(f"folded ω of {path} into a plain transformer checkpoint {output}")
