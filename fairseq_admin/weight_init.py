"""Initial weights of the Transformer's projections: the Admin reference's (fairseq 0.8) or fairseq 0.12's.

The Admin paper (arXiv:2004.08249) trained on fairseq 0.8, whose initialisation differs from fairseq
0.12's in the feed-forward block and in the attention biases:

=================  =====================================  ==========================================
projection         reference (fairseq 0.8)                 fairseq 0.12
=================  =====================================  ==========================================
fc1, fc2           xavier-uniform, bias 0                  PyTorch default U(±1/√fan_in), bias too
q, k, v            xavier-uniform of the fused 3d×d        xavier-uniform gain 1/√2 (same bound),
                   in-projection, bias 0                   bias PyTorch default (not 0)
out_proj           xavier-uniform, bias 0                  the same
embeddings         N(0, d^-1/2), padding row 0             the same
=================  =====================================  ==========================================

With fairseq 0.12's FFN the branch variance at initialisation is about 5× smaller, so every profiled
ω grows more slowly than in the paper. ``reference`` is the default of every model of this plugin.
"""
import math

import torch
from torch import nn

from .hooks import transformer_layers

#: choices of --weight-init
WEIGHT_INITS = ("reference", "fairseq")
DEFAULT_WEIGHT_INIT = "reference"


def _attention_modules(model: nn.Module):
    from fairseq.modules import MultiheadAttention
    return [m for m in model.modules() if isinstance(m, MultiheadAttention)]


def _ffn_linears(model: nn.Module):
    return [linear for layer in transformer_layers(model) for linear in (layer.fc1, layer.fc2)]


@torch.no_grad()
def _xavier_uniform_fused(weight: torch.Tensor, fused_rows: int) -> None:
    # fairseq 0.8 held q, k, v in one (3d × d) matrix: xavier bound sqrt(6 / (d + 3d))
    bound = math.sqrt(6.0 / (weight.shape[1] + fused_rows))
    weight.uniform_(-bound, bound)


@torch.no_grad()
def apply_reference_init(model: nn.Module) -> None:
    """Re-initialise every attention and feed-forward projection as the reference did (fairseq 0.8)."""
    for attn in _attention_modules(model):
        projections = (attn.q_proj, attn.k_proj, attn.v_proj)
        fused = all(p.weight.shape == projections[0].weight.shape for p in projections) and attn.qkv_same_dim
        for proj in projections:
            if fused:
                _xavier_uniform_fused(proj.weight, 3 * proj.weight.shape[0])
            else:  # fairseq 0.8 kept separate k/v matrices then, each xavier-uniform
                nn.init.xavier_uniform_(proj.weight)
            if proj.bias is not None:
                proj.bias.zero_()
        nn.init.xavier_uniform_(attn.out_proj.weight)
        if attn.out_proj.bias is not None:
            attn.out_proj.bias.zero_()
    for linear in _ffn_linears(model):
        nn.init.xavier_uniform_(linear.weight)
        if linear.bias is not None:
            linear.bias.zero_()


@torch.no_grad()
def apply_deepnorm_init(stack: nn.Module, beta: float, weight_init: str) -> None:
    """DeepNet's (arXiv:2203.00555) initialisation of one stack.

    reference: exactly DeepNet's, xavier-normal with gain β on fc1, fc2, v_proj and out_proj and gain
    1 on q_proj and k_proj, zero biases. fairseq: fairseq 0.12's weights with those four multiplied by β.
    """
    for layer in transformer_layers(stack):
        attns = [layer.self_attn] + ([layer.encoder_attn] if getattr(layer, "encoder_attn", None) is not None else [])
        scaled = [layer.fc1, layer.fc2] + [p for a in attns for p in (a.v_proj, a.out_proj)]
        unscaled = [p for a in attns for p in (a.q_proj, a.k_proj)]
        if weight_init == "fairseq":
            for linear in scaled:
                linear.weight.mul_(beta)
            continue
        for linear, gain in [(lin, beta) for lin in scaled] + [(lin, 1.0) for lin in unscaled]:
            nn.init.xavier_normal_(linear.weight, gain=gain)
            if linear.bias is not None:
                linear.bias.zero_()


def initialize_weights(model: nn.Module, weight_init: str) -> None:
    """Apply --weight-init to a freshly built model (``fairseq``: leave fairseq's weights as they are)."""
    if weight_init not in WEIGHT_INITS:
        from .errors import AdminError
        raise AdminError(f"unknown --weight-init {weight_init!r}: choose one of {', '.join(WEIGHT_INITS)}")
    if weight_init == "reference":
        apply_reference_init(model)
