"""The pure math of the shortcut scale omega (Admin, arXiv:2004.08249): no torch modules.

Every function here works on plain floats so that it can be checked by hand.
"""
import math
from typing import Dict, Iterable, List, Sequence, Tuple

#: ω initialisations a user can pick with --admin-init.
#: profile: the paper's data-driven profiling (section 3 of the spec);
#: logn / ones / sqrtn: the analytic O(log N) / O(N) / O(1) choices of admin-torch;
#: deepnorm: DeepNet's constant α on the shortcut, with β-scaled initial weights.
OMEGA_INITS = ("profile", "logn", "ones", "sqrtn", "deepnorm")

#: residual sublayers per layer, in forward order.
ENCODER_SUBLAYERS = ("self_attn", "ffn")
DECODER_SUBLAYERS = ("self_attn", "encoder_attn", "ffn")


def sublayer_names(stack: str, layers: int) -> List[Tuple[int, str]]:
    """(layer index, sublayer kind) of every residual sublayer of a stack, in forward order."""
    kinds = ENCODER_SUBLAYERS if stack == "encoder" else DECODER_SUBLAYERS
    return [(layer, kind) for layer in range(layers) for kind in kinds]


class OmegaRecursion:
    """The profiled recursion of one stack, fed one sublayer at a time in forward order.

    ω_i := c, then c := sqrt(Var(ω_i·r_i) + Var(F_i(r_i))), starting from c = 1.
    """

    def __init__(self, start: float = 1.0):
        self.running = start

    def next_omega(self) -> float:
        """The ω of the sublayer about to run."""
        return self.running

    def update(self, var_shortcut: float, var_branch: float) -> None:
        """Advance the running value with the variances measured at the sublayer that just ran."""
        self.running = math.sqrt(var_shortcut + var_branch)


def profiled_omegas(var_pairs: Iterable[Tuple[float, float]]) -> List[float]:
    """ω of each sublayer from its measured (Var(ω_i·r_i), Var(F_i)), in forward order.

    Only a replay aid: during real profiling Var(ω_i·r_i) depends on the ω being set.
    """
    rec, omegas = OmegaRecursion(), []
    for var_shortcut, var_branch in var_pairs:
        omegas.append(rec.next_omega())
        rec.update(var_shortcut, var_branch)
    return omegas


def closed_form_omegas(var_input: float, var_branches: Sequence[float]) -> List[float]:
    """ω_k = sqrt(Var(x_0) + Σ_{j<k} Var(F_j)) for k >= 2, ω_1 = 1: the recursion when every
    sublayer input is a LayerNorm output of variance 1 (the embedding acts as branch 0)."""
    out = [1.0]
    total = var_input
    for var_branch in var_branches[:-1]:
        total += var_branch
        out.append(math.sqrt(total))
    return out


def analytic_omega(num_sublayers: int, init: str) -> float:
    """ω for every sublayer of a stack of N residual sublayers (admin-torch 0.1.0).

    logn: sqrt((N+1)/ln(N+1) - 1), the O(log N) dependency; ones: 1 (plain Post-LN, O(N));
    sqrtn: sqrt(N) (O(1)).
    """
    n = num_sublayers
    if n < 1:
        raise ValueError(f"a stack needs at least one residual sublayer, got {n}")
    if init == "logn":
        return math.sqrt((n + 1) / math.log(n + 1) - 1)
    if init == "ones":
        return 1.0
    if init == "sqrtn":
        return math.sqrt(n)
    raise ValueError(f"no analytic ω for --admin-init {init!r}")


def deepnorm_constants(encoder_layers: int, decoder_layers: int) -> Dict[str, float]:
    """DeepNet (arXiv:2203.00555) α (shortcut scale) and β (init gain) of an N-M encoder-decoder."""
    n, m = encoder_layers, decoder_layers
    out = {"decoder_alpha": (3 * m) ** 0.25, "decoder_beta": (12 * m) ** -0.25}
    if n > 0:
        out["encoder_alpha"] = 0.81 * (n**4 * m) ** (1 / 16)
        out["encoder_beta"] = 0.87 * (n**4 * m) ** (-1 / 16)
    return out


def branch_dependency(var_shortcut: float, var_branch: float) -> float:
    """β²_{i,i} ≈ Var(F_i) / Var(ω_i·r_i + F_i): how much sublayer i's output depends on its branch
    (shortcut and branch taken as uncorrelated, as in the paper's analysis)."""
    total = var_shortcut + var_branch
    return var_branch / total if total > 0 else float("nan")
