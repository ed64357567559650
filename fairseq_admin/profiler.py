"""Profiling: one training-mode forward that fills ω in order (arXiv:2004.08249, Algorithm 1).

For every sublayer, in forward order and separately for encoder and decoder:
ω_i := c, then c := sqrt(Var(ω_i ⊙ r_i) + Var(F_i(r_i))), starting from c = 1.
No optimizer step, no state outside the objects made here.
"""
import math
from typing import Dict, List, Optional

import torch
from fairseq import utils

from .errors import AdminError
from .omega import OmegaRecursion, sublayer_names
from .profile_file import Profile, StackProfile, SublayerStat, model_shape
from .residual import ResidualScale


def _variance(x: torch.Tensor, keep: Optional[torch.Tensor]) -> float:
    """Population variance over all elements (T x B x C), or over the kept (T x B) positions only."""
    x = x.detach().double()
    if keep is not None:
        x = x[keep]
    return x.var(unbiased=False).item()


class StackRecorder:
    """Fills ω of one stack as its sublayers run, and records the variances it measured."""

    def __init__(self, stack: str, layers: int, keep: Optional[torch.Tensor] = None):
        self.stack = stack
        self.names = sublayer_names(stack, layers)
        self.keep = keep  # T x B bool mask of non-padding positions, or None to include padding
        self.recursion = OmegaRecursion()
        self.stats: List[SublayerStat] = []

    def __call__(self, scale: ResidualScale, shortcut: torch.Tensor, branch: torch.Tensor) -> None:
        index = len(self.stats)
        if index >= len(self.names):
            raise AdminError(f"{self.stack}: more residual sublayers ran than the model declares")
        layer, kind = self.names[index]
        omega = self.recursion.next_omega()
        scale.fill_(omega)
        var_input = _variance(shortcut, self.keep)
        var_shortcut = _variance(shortcut * scale.omega, self.keep)
        var_branch = _variance(branch, self.keep)
        for what, value in (("input", var_input), ("branch output", var_branch)):
            if not math.isfinite(value) or value <= 0.0:
                raise AdminError(
                    f"profiling failed at {self.stack} layer {layer} {kind}: the {what} variance is "
                    f"{value} (NaN/inf or zero); check the batch and the initialisation, or use "
                    "--admin-init logn, which needs no data pass")
        self.recursion.update(var_shortcut, var_branch)
        self.stats.append(SublayerStat(layer, kind, omega, var_input, var_shortcut, var_branch))


def profile_model(model, sample: Dict, seed: int, skip_padding: bool = False) -> Profile:
    """Profile ``model`` (an AdminTransformerModel) on one collated batch; sets ω and returns it.

    The forward runs in training mode (dropout on) under ``seed`` and without gradients; the
    model's previous training mode and the global RNG state are restored afterwards.
    """
    net_input = sample["net_input"]
    pad = model.encoder.padding_idx
    keep_src = keep_tgt = None
    if skip_padding:
        keep_src = net_input["src_tokens"].ne(pad).t()  # B x S -> S x B
        keep_tgt = net_input["prev_output_tokens"].ne(pad).t()
    recorders = {
        "encoder": StackRecorder("encoder", len(model.encoder.layers), keep_src),
        "decoder": StackRecorder("decoder", len(model.decoder.layers), keep_tgt),
    }
    scales = {stack: model.residual_scales(stack) for stack in recorders}
    was_training = model.training
    try:
        for stack, rec in recorders.items():
            for scale in scales[stack]:
                scale.recorder = rec
        model.train()
        with torch.no_grad(), utils.set_torch_seed(seed):
            model.omega_ready = True  # being set right now
            model(**net_input)
    finally:
        for stack in recorders:
            for scale in scales[stack]:
                scale.recorder = None
        model.train(was_training)
    for stack, rec in recorders.items():
        if len(rec.stats) != len(rec.names):
            model.omega_ready = False
            raise AdminError(f"profiling saw {len(rec.stats)} of the {len(rec.names)} {stack} sublayers")
    shape = model_shape(model)
    tokens = int(net_input["src_tokens"].ne(pad).sum() + net_input["prev_output_tokens"].ne(pad).sum())
    return Profile(
        encoder=StackProfile(*shape["encoder"], recorders["encoder"].stats),
        decoder=StackProfile(*shape["decoder"], recorders["decoder"].stats),
        seed=seed,
        tokens=tokens,
        sentences=int(net_input["src_tokens"].size(0)),
        padding="excluded" if skip_padding else "included",
    )
