"""Branch dependency β² of every residual sublayer, measured during a training step (arXiv:2004.08249, §4.1).

For a sublayer whose shortcut carries r and whose branch computes F, the paper's β²_{i,i} is

    β² = Var(F) / Var(ω ⊙ r + F)

(ω = 1 for Post-LN, DeepNorm's α, Admin's ω). For Pre-LN the branch is F(LN(x)) and the shortcut x, so
the same formula gives Var(F(LN(x))) / Var(x + F(LN(x))). β² near 1: the output is mostly the branch
(heavy dependency, the amplification the paper blames for Post-LN's instability); near 0: mostly the
shortcut.

Every fairseq Transformer layer (fairseq's own and the Admin layers) adds shortcut and branch through
its public ``residual_connection(x, residual)`` hook, in forward order. ``DependencyMeter`` observes
that hook on each layer instance for one step (hooks.ResidualObserver: an instance attribute, removed
afterwards; the class and other models are untouched), reads the two tensors it already receives, and
adds no forward pass.
Variances are population variances over all T x B x C elements, padding included, as the profiler
measures them by default; computed in float32 (fp16 activations are upcast) and read back once per step
(no device synchronisation per sublayer).
"""
from typing import Dict, List, Tuple

import torch
from fairseq import metrics

from .hooks import ResidualObserver, transformer_layers
from .omega import sublayer_names

_KINDS = {"self_attn": "attn", "encoder_attn": "cross", "ffn": "ffn"}


def metric_name(stack: str, layer: int, kind: str) -> str:
    """Name of one sublayer's β² in the train log: beta2_enc_01_attn, beta2_dec_18_cross, ..."""
    return f"beta2_{stack[:3]}_{layer + 1:02d}_{_KINDS[kind]}"


class DependencyMeter:
    """Context manager: while active, records β² of every residual sublayer of ``model``'s forwards."""

    def __init__(self, model):
        self.model = model
        self.layers = {stack: transformer_layers(model, stack) for stack in ("encoder", "decoder")}
        # per layer: (Var(F), Var(sum)) of its sublayers in call order as 0-dim tensors, first forward only
        # (activation checkpointing may run a layer again during backward)
        self.values: Dict[Tuple[str, int], List[Tuple[torch.Tensor, torch.Tensor]]] = {}

    def _expected(self, stack: str, layer) -> int:
        return 2 if stack == "encoder" else (3 if getattr(layer, "encoder_attn", None) is not None else 2)

    def _observe(self, key, layer, x, residual, out) -> None:
        seen = self.values.setdefault(key, [])
        if len(seen) < self._expected(key[0], layer):
            branch_of = getattr(layer, "dependency_branch", None)  # ReZero adds α·F, not F
            with torch.no_grad():
                branch = (branch_of(x) if branch_of is not None else x).detach().float()
                seen.append((branch.var(unbiased=False), out.detach().float().var(unbiased=False)))

    def __enter__(self):
        pairs = [((stack, i), layer) for stack, layers in self.layers.items() for i, layer in enumerate(layers)]
        self._observer = ResidualObserver(pairs, self._observe).__enter__()
        return self

    def __exit__(self, *exc):
        return self._observer.__exit__(*exc)

    def results(self) -> Dict[str, float]:
        """{metric name: β²} per sublayer, plus beta2_enc_mean / beta2_dec_mean (the stacks' means)."""
        out: Dict[str, float] = {}
        for stack, layers in self.layers.items():
            names = sublayer_names(stack, len(layers))
            if stack == "decoder" and layers and getattr(layers[0], "encoder_attn", None) is None:
                names = [(layer, kind) for layer, kind in names if kind != "encoder_attn"]
            pairs = [v for i in range(len(layers)) for v in self.values.get((stack, i), [])]
            if not pairs:
                continue
            variances = torch.stack([torch.stack(p) for p in pairs]).double().cpu().tolist()  # one read-back
            values = [b / t if t > 0 else float("nan") for b, t in variances]
            for (layer, kind), value in zip(names, values):
                out[metric_name(stack, layer, kind)] = value
            out[f"beta2_{stack[:3]}_mean"] = sum(values) / len(values)
        return out

    def log(self, update: int) -> Dict[str, float]:
        """Put the results into fairseq's metrics (train log lines, tensorboard) and return them, with
        ``beta2_update``: the number of updates before the measured step (a log line may print values
        measured earlier in its interval)."""
        results = self.results()
        metrics.log_scalar("beta2_update", update, weight=0, round=0)
        for name, value in results.items():
            metrics.log_scalar(name, value, weight=0, round=4)
        return results
