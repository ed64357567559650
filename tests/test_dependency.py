"""Branch dependency β² (--admin-log-dependency) against values recomputed from captured sublayer tensors."""
import re

import pytest
import torch

from conftest import build, run_cli, train_args
from fairseq_admin.dependency import DependencyMeter
from fairseq_admin.hooks import ResidualObserver, transformer_layers


def _batch(task, n=6):
    task.load_dataset("valid")
    ds = task.dataset("valid")
    return ds.collater([ds[i] for i in range(n)])


def _var(t):
    return t.detach().double().var(unbiased=False).item()


def _captured_beta2(model, sample, pre_ln):
    """β² of every sublayer from forward hooks on fairseq's own submodules (no dropout: eval mode).

    Post-LN: attention sublayer shortcut = the layer's input, branch = self_attn's output; the next
    sublayer's shortcut = the previous LayerNorm's output. Pre-LN: shortcut = the sublayer's input (the
    previous sum), branch = the module's output on LN(input)."""
    rows = {"encoder": [], "decoder": []}
    hooks = []

    def scale_of(layer, name):
        mod = getattr(layer, name, None)
        return mod.omega.detach() if mod is not None else 1.0

    for stack in ("encoder", "decoder"):
        for layer in getattr(model, stack).layers:
            seen = {}

            def keep(key, seen=seen):
                def hook(_m, inputs, output):
                    seen[key] = (None, output[0] if isinstance(output, tuple) else output)
                return hook

            hooks.append(layer.register_forward_pre_hook(lambda m, inp, seen=seen: seen.__setitem__("in", inp[0])))
            for name in ("self_attn", "encoder_attn", "fc2", "self_attn_layer_norm", "encoder_attn_layer_norm",
                         "final_layer_norm"):
                if getattr(layer, name, None) is not None:
                    hooks.append(getattr(layer, name).register_forward_hook(keep(name)))
            rows[stack].append((layer, seen))
    try:
        model.eval()
        with torch.no_grad():
            model(**sample["net_input"])
    finally:
        for h in hooks:
            h.remove()
    out = {"encoder": [], "decoder": []}
    for stack, layers in rows.items():
        kinds = [("self_attn", "self_attn_layer_norm", "self_attn_omega")]
        if stack == "decoder":
            kinds.append(("encoder_attn", "encoder_attn_layer_norm", "encoder_attn_omega"))
        kinds.append(("fc2", "final_layer_norm", "ffn_omega"))
        for layer, seen in layers:
            shortcut = seen["in"]
            for module, norm, omega in kinds:
                branch = seen[module][1]
                total = shortcut * scale_of(layer, omega) + branch
                out[stack].append(_var(branch) / _var(total))
                # the next sublayer's shortcut: Post-LN normalises the sum, Pre-LN carries the sum itself
                shortcut = total if pre_ln else seen[norm][1]
    return out


@pytest.mark.parametrize("arch,extra", [
    ("admin_transformer", ["--admin-init", "logn"]),
    ("admin_transformer", ["--admin-init", "deepnorm"]),
    ("refinit_transformer", []),
    ("refinit_transformer", ["--encoder-normalize-before", "--decoder-normalize-before"]),
])
def test_beta2_equals_recomputation_from_captured_tensors(bin_data, arch, extra):
    _, task, model = build(bin_data, *extra, arch=arch)
    if arch == "admin_transformer":  # ω away from 1 and not uniform, so a missing ω would show
        for s in model.residual_scales("encoder") + model.residual_scales("decoder"):
            s.omega.data.uniform_(0.5, 3.0)
    sample = _batch(task)
    expected = _captured_beta2(model, sample, pre_ln="--encoder-normalize-before" in extra)
    model.eval()
    with DependencyMeter(model) as meter, torch.no_grad():
        model(**sample["net_input"])
    got = meter.results()
    enc = [v for k, v in got.items() if k.startswith("beta2_enc_") and not k.endswith("mean")]
    dec = [v for k, v in got.items() if k.startswith("beta2_dec_") and not k.endswith("mean")]
    assert len(enc) == 4 and len(dec) == 6
    assert enc == pytest.approx(expected["encoder"], rel=1e-5)  # float32 against float64
    assert dec == pytest.approx(expected["decoder"], rel=1e-5)
    assert got["beta2_enc_mean"] == pytest.approx(sum(enc) / 4)
    assert all(0 < v < 1.5 for v in enc + dec)
    assert list(got)[:2] == ["beta2_enc_01_attn", "beta2_enc_01_ffn"] and "beta2_dec_02_cross" in got
    # the hook is gone afterwards: the layers' own method again, and no value recorded by a later forward
    assert "residual_connection" not in vars(model.encoder.layers[0])
    before = {k: len(v) for k, v in meter.values.items()}
    with torch.no_grad():
        model(**sample["net_input"])
    assert {k: len(v) for k, v in meter.values.items()} == before


def test_beta2_only_read_in_training_mode_changes_nothing(bin_data):
    # with dropout on, the meter sees the same tensors the step uses: outputs identical with and without it
    _, task, model = build(bin_data, "--admin-init", "logn")
    sample = _batch(task)
    model.train()
    with torch.no_grad():
        torch.manual_seed(3)
        plain = model(**sample["net_input"])[0]
        torch.manual_seed(3)
        with DependencyMeter(model) as meter:
            measured = model(**sample["net_input"])[0]
    assert torch.equal(plain, measured)
    assert len(meter.results()) == 4 + 6 + 2


def test_observers_nest_and_restore_what_they_found(bin_data):
    # a capture inside the meter sees the same sums, in forward order; each exit restores the layer as found
    _, task, model = build(bin_data, "--admin-init", "logn")
    sample = _batch(task)
    layers = [(stack, layer) for stack in ("encoder", "decoder") for layer in transformer_layers(model, stack)]
    assert [id(l) for _, l in layers] == [id(l) for s in ("encoder", "decoder") for l in getattr(model, s).layers]
    seen = []
    model.eval()
    with torch.no_grad(), DependencyMeter(model) as meter:
        with ResidualObserver(layers, lambda key, layer, x, residual, out: seen.append((key, out))):
            model(**sample["net_input"])
        assert all("residual_connection" in layer.__dict__ for _, layer in layers)  # the meter's, still on
        model(**sample["net_input"])  # measured once per sublayer: the second forward adds nothing
    assert all("residual_connection" not in layer.__dict__ for _, layer in layers)
    assert [k for k, _ in seen] == ["encoder"] * 4 + ["decoder"] * 6
    sums = [meter.values[key] for key in sorted(meter.values)]
    assert sum(len(v) for v in sums) == len(seen)
    enc_first = meter.values[("encoder", 0)][0][1].item()
    assert enc_first == pytest.approx(seen[0][1].float().var(unbiased=False).item(), rel=1e-6)


def test_log_dependency_in_train_log_without_changing_training(bin_data, tmp_path):
    common = ["--admin-init", "logn", "--log-format", "simple", "--log-interval", "2", "--seed", "3"]
    logged = run_cli("fairseq_cli.train", *train_args(bin_data, tmp_path / "a", *common, "--admin-log-dependency", "2",
                                                      updates=6))
    plain = run_cli("fairseq_cli.train", *train_args(bin_data, tmp_path / "b", *common, updates=6))
    lines = [line for line in logged.stdout.splitlines() if "train_inner" in line]
    assert len(lines) == 3
    for line, measured_at in zip(lines, (0, 2, 4)):
        assert f"beta2_update={measured_at}," in line
        values = dict(re.findall(r"(beta2_\w+?)=([\d.]+)", line))
        assert {"beta2_enc_01_attn", "beta2_enc_02_ffn", "beta2_dec_02_cross", "beta2_enc_mean",
                "beta2_dec_mean"} <= set(values)
        assert 0 < float(values["beta2_dec_mean"]) < 1
    # measurement only: the same losses as the run without it
    loss = lambda proc: re.findall(r"train_inner .*? loss=([\d.]+)", proc.stdout)  # noqa: E731
    assert loss(logged) == loss(plain) and len(loss(plain)) == 3


def test_negative_log_interval_is_one_line(bin_data, tmp_path):
    for flag in ("--admin-log-dependency", "--admin-log-omega"):
        proc = run_cli("fairseq_cli.train", *train_args(bin_data, tmp_path / "c", flag, "-1"), check=False)
        assert proc.returncode != 0
        assert f"{flag} -1: give a number of updates" in proc.stderr
        assert "Traceback" not in proc.stderr
