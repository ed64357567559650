"""The mechanism at initialisation (issue 15): per method, on the study's first training batch and with the
study's 18-18 models (same flags, seed and initialisation as benchmarks/study.py):

- β² = Var(F) / Var(ω·r + F) of every residual sublayer (fairseq_admin.dependency, during the step);
- the gradient norm at every sublayer output (the residual sum before its LayerNorm), scaled by the largest
  in the network (the paper's relative gradient norm, its Figure 3), and each layer's parameter gradient norm;
- ω per sublayer.

One training-mode forward and backward per method (dropout on, the step's seed), no optimizer step.

    python benchmarks/mechanism.py [--bin work/bench/study-bin] [--out benchmarks/results-mechanism] [--quick]
"""
import argparse
import json
import math
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import study  # noqa: E402

METHODS = ("postln", "preln", "admin", "admin-logn", "deepnorm")


def build(bin_dir, method, layers, seed, quick):
    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    cmd = study.train_command(bin_dir, tempfile.mkdtemp(), layers, method, seed, 1, quick)[1:]
    save = cmd.index("--save-dir")
    cmd[save + 1] = tempfile.mkdtemp()
    args = options.parse_args_and_arch(options.get_training_parser(), cmd)
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(seed)  # as fairseq-train seeds before building the model
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)  # profiles Admin on the first batch
    criterion = task.build_criterion(cfg.criterion)
    return task, model, criterion


def measure(bin_dir, method, layers, seed, quick):
    from fairseq import utils

    from fairseq_admin.dependency import DependencyMeter, metric_name
    from fairseq_admin.hooks import ResidualObserver, transformer_layers
    from fairseq_admin.omega import sublayer_names

    task, model, criterion = build(bin_dir, method, layers, seed, quick)
    sample = task.first_training_batch(model)
    outputs = {"encoder": [], "decoder": []}

    def capture(stack, layer, x, residual, out):
        if out.requires_grad:
            out.retain_grad()
        outputs[stack].append(out)

    model.train()
    observed = [(stack, layer) for stack in outputs for layer in transformer_layers(model, stack)]
    with DependencyMeter(model) as meter, ResidualObserver(observed, capture):  # both see the same tensors
        with utils.set_torch_seed(seed):
            loss, _, _ = criterion(model, sample)
            loss.backward()
    beta = meter.results()
    rows = []
    grads = {stack: [o.grad.double().norm().item() for o in outs] for stack, outs in outputs.items()}
    top = max(max(g) for g in grads.values())
    omegas = {}
    if hasattr(model, "residual_scales"):
        omegas = {stack: [s.omega.detach().double().mean().item() for s in model.residual_scales(stack)]
                  for stack in outputs}
    for stack in ("encoder", "decoder"):
        names = sublayer_names(stack, layers)
        for i, (layer, kind) in enumerate(names):
            rows.append({"stack": stack, "layer": layer + 1, "kind": kind,
                         "beta2": beta[metric_name(stack, layer, kind)],
                         "rel_grad": grads[stack][i] / top,
                         "omega": omegas[stack][i] if omegas else 1.0})
    layer_grad = {stack: [math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in layer.parameters()
                                        if p.grad is not None)) for layer in getattr(model, stack).layers]
                  for stack in outputs}
    return {"method": method, "loss": loss.item() / sample["ntokens"], "rows": rows, "layer_grad": layer_grad,
            "beta2_enc_mean": beta["beta2_enc_mean"], "beta2_dec_mean": beta["beta2_dec_mean"]}


def write(out, results, layers):
    lines = [f"At initialisation, {layers}-{layers}, width {'32' if layers < 18 else '128'}, the study's first training "
             "batch (benchmarks/mechanism.py).", "",
             "| method | β² enc mean | β² dec mean | β² enc first / last sublayer | β² dec first / last "
             "| rel. grad norm enc first / last | dec first / last | ω enc first / last | layer grad norm enc 1 / last, dec 1 / last |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        enc = [x for x in r["rows"] if x["stack"] == "encoder"]
        dec = [x for x in r["rows"] if x["stack"] == "decoder"]
        lg = r["layer_grad"]
        lines.append(
            f"| {study.LABELS[r['method']]} | {r['beta2_enc_mean']:.3f} | {r['beta2_dec_mean']:.3f} "
            f"| {enc[0]['beta2']:.3f} / {enc[-1]['beta2']:.3f} | {dec[0]['beta2']:.3f} / {dec[-1]['beta2']:.3f} "
            f"| {enc[0]['rel_grad']:.3f} / {enc[-1]['rel_grad']:.3f} | {dec[0]['rel_grad']:.3f} / {dec[-1]['rel_grad']:.3f} "
            f"| {enc[0]['omega']:.2f} / {enc[-1]['omega']:.2f} "
            f"| {lg['encoder'][0]:.3g} / {lg['encoder'][-1]:.3g}, {lg['decoder'][0]:.3g} / {lg['decoder'][-1]:.3g} |")
    try:
        from fairseq_admin.profile_file import versions_line
        lines += ["", versions_line()]
    except ImportError:
        pass
    text = "\n".join(lines) + "\n"
    study._write_atomic(os.path.join(out, "init.md"), text)
    study._write_atomic(os.path.join(out, "init.json"), json.dumps(results, indent=1) + "\n")
    print(text)
    plot(out, results)


def plot(out, results):
    plt = study._plt()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for r in results:
        for col, stack in enumerate(("encoder", "decoder")):
            rows = [x for x in r["rows"] if x["stack"] == stack]
            axes[0, col].plot(range(1, len(rows) + 1), [x["beta2"] for x in rows], marker=".", label=study.LABELS[r["method"]])
            axes[1, col].semilogy(range(1, len(rows) + 1), [x["rel_grad"] for x in rows], marker=".",
                                  label=study.LABELS[r["method"]])
    for col, stack in enumerate(("encoder", "decoder")):
        axes[0, col].set_title(f"{stack}: β² = Var(F) / Var(ω·r + F) at init", fontsize=9)
        axes[1, col].set_title(f"{stack}: gradient norm at each sublayer output / the network's largest", fontsize=9)
        for row in range(2):
            axes[row, col].set_xlabel("sublayer (forward order)")
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    study._save_png(fig, os.path.join(out, "init.png"), dpi=100)


def floor_profile(src, dest):
    """The targeted ablation's ω: the profile's ω_i raised to Admin logn's constant where it is below it
    (ω_i := max(ω_i, ω_logn), per stack), written as the reference's legacy ``index value`` profile."""
    from fairseq_admin.omega import analytic_omega
    from fairseq_admin.profile_file import read_profile

    profile = read_profile(src)
    lines = []
    for stack in (profile.encoder, profile.decoder):
        floor = analytic_omega(len(stack.sublayers), "logn")
        lines += [f"{i} {max(s.omega, floor):.6f}" for i, s in enumerate(stack.sublayers, 1)]
    study._write_atomic(dest, "\n".join(lines) + "\n")
    print(f"wrote {dest}: ω := max(profiled ω, logn ω) per stack")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--floor-profile", nargs=2, metavar=("PROFILE", "DEST"),
                   help="only write the ablation's profile (ω raised to logn's constant) from PROFILE to DEST")
    p.add_argument("--bin", default=os.path.join(ROOT, "work", "bench", "study-bin"))
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results-mechanism"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="2-2 layers, width 32 (the tests' mode)")
    args = p.parse_args(argv)
    study.fairseq_style_logging()
    if args.floor_profile:
        return floor_profile(*args.floor_profile)
    if not os.path.exists(os.path.join(args.bin, "dict.de.txt")):
        sys.exit(f"mechanism: error: no binarized data in {args.bin}: run benchmarks/study.sh first, or pass --bin")
    os.makedirs(args.out, exist_ok=True)
    layers = 2 if args.quick else 18
    results = [measure(args.bin, m, layers, args.seed, args.quick) for m in METHODS]
    write(args.out, results, layers)


if __name__ == "__main__":
    main()
