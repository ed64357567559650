"""Output change under a small parameter perturbation (arXiv:2004.08249, section 3 and figure 4):
Var[F(x, W) - F(x, W + δ)] grows O(N) with depth for Post-LN and O(log N) for Pre-LN and Admin.

Models are real fairseq models built through fairseq's own parser and registries; x is a real batch.
"""
import logging
from typing import Dict, List, Sequence

import torch

from ..errors import AdminError
from ..profiler import profile_model

logger = logging.getLogger(__name__)

#: method -> (arch, extra flags); admin-profile is profiled on the batch after it is built
METHODS = {
    "postln": ("refinit_transformer", []),
    "preln": ("refinit_transformer", ["--encoder-normalize-before", "--decoder-normalize-before"]),
    "admin": ("admin_transformer", ["--admin-init", "profile"]),
    "admin-logn": ("admin_transformer", ["--admin-init", "logn"]),
    "deepnorm": ("admin_transformer", ["--admin-init", "deepnorm"]),
}


def _decoder_states(model, sample) -> torch.Tensor:
    with torch.no_grad():
        out, _ = model(**sample["net_input"], features_only=True)  # B x T x C
    keep = sample["net_input"]["prev_output_tokens"].ne(model.decoder.padding_idx)
    return out[keep].double()  # real positions only: N x C


def perturbable(model) -> List[torch.nn.Parameter]:
    """The weight matrices of the encoder/decoder layers (not embeddings, LayerNorms or ω)."""
    return [p for name, p in model.named_parameters()
            if ".layers." in name and p.dim() == 2 and "omega" not in name]


def output_change(model, sample, rel: float, draws: int = 3, seed: int = 0) -> float:
    """Mean over ``draws`` of Var[F(x, W) - F(x, W + δ)], δ ~ N(0, (rel·std(W))²) per weight matrix,
    in eval mode (no dropout); the model's weights are restored afterwards."""
    model.eval()
    base = _decoder_states(model, sample)
    params = perturbable(model)
    saved = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    try:
        for _ in range(draws):
            with torch.no_grad():
                for p, w in zip(params, saved):
                    noise = torch.randn(w.shape, generator=gen, dtype=w.dtype)
                    p.copy_(w + rel * w.std() * noise)
            total += (_decoder_states(model, sample) - base).var(unbiased=False).item()
    finally:
        with torch.no_grad():
            for p, w in zip(params, saved):
                p.copy_(w)
    return total / draws


def build_model(data: str, method: str, layers: int, dim: int, ffn: int, heads: int, seed: int):
    """A fresh model of ``method`` with ``layers`` encoder and decoder layers, built by fairseq."""
    from fairseq import options, tasks

    from .. import USER_DIR

    arch, extra = METHODS[method]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        data, "--user-dir", USER_DIR, "--task", "translation", "--arch", arch, "--cpu",
        "--encoder-layers", str(layers), "--decoder-layers", str(layers),
        "--encoder-embed-dim", str(dim), "--decoder-embed-dim", str(dim),
        "--encoder-ffn-embed-dim", str(ffn), "--decoder-ffn-embed-dim", str(ffn),
        "--encoder-attention-heads", str(heads), "--decoder-attention-heads", str(heads),
        "--share-all-embeddings", "--dropout", "0.1", "--seed", str(seed), *extra])
    task = tasks.setup_task(args)
    torch.manual_seed(seed)
    return task, task.build_model(args)


def batch(task, split: str, sentences: int):
    try:
        task.load_dataset(split)
    except FileNotFoundError:  # fairseq's "Dataset not found: valid (...)"
        raise AdminError(f"{task.cfg.data} has no binarized {split} split: binarize one (scripts/binarize.sh "
                         "writes train, valid and test) and pass that folder")
    ds = task.dataset(split)
    return ds.collater([ds[i] for i in range(min(sentences, len(ds)))])


def depth_sweep(data: str, methods: Sequence[str], depths: Sequence[int], dim=64, ffn=128, heads=4,
                rel=0.01, draws=3, sentences=32, seed=1, split="valid") -> Dict[str, Dict[int, float]]:
    """Output change at initialisation for every method and depth (layers per stack)."""
    table: Dict[str, Dict[int, float]] = {m: {} for m in methods}
    sample = None
    for depth in depths:
        for method in methods:
            task, model = build_model(data, method, depth, dim, ffn, heads, seed)
            sample = sample or batch(task, split, sentences)
            if method == "admin":
                profile_model(model, sample, seed=seed)
            table[method][depth] = output_change(model, sample, rel, draws, seed)
            logger.info(f"{method:10} {depth:3} layers per stack: output change {table[method][depth]:.3e}")
    return table


def format_sweep(table: Dict[str, Dict[int, float]]) -> str:
    methods = list(table)
    depths = sorted({d for m in methods for d in table[m]})
    lines = [f"{'layers':>6} {'sublayers(enc+dec)':>18} " + " ".join(f"{m:>11}" for m in methods)]
    for d in depths:
        lines.append(f"{d:>6} {5 * d:>18} " + " ".join(f"{table[m][d]:>11.3e}" for m in methods))
    return "\n".join(lines)


def plot_sweep(table: Dict[str, Dict[int, float]], path: str, title: str = "") -> None:
    from .plots import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, row in table.items():
        depths = sorted(row)
        ax.plot([5 * d for d in depths], [row[d] for d in depths], marker="o", label=method)
    ax.set(xlabel="residual sublayers (encoder 2N + decoder 3N)",
           ylabel="Var[F(x,W) - F(x,W+δ)]", title=title or "output change at initialisation")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
    plt.close(fig)
