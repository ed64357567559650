"""The other stabilisers (B2T, ReZero, ReZero-PostLN, T-Fixup, DS-Init): forward rules against hand-written
computations, initialisations against their formulas, refused options, and each trained, averaged and
decoded with fairseq's own CLIs."""
import math
import re

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, USER_DIR, build, run_cli
from fairseq_admin import AdminError
from fairseq_admin.stabilizers import METHODS, dsinit_bound

LAYERS = 2  # TINY: 2-2 layers, width 32, ffn 64, shared embeddings


def _tiny(bin_data, method, *extra, layers=LAYERS, seed=7):
    return build(bin_data, "--encoder-layers", layers, "--decoder-layers", layers, "--dropout", "0",
                 "--attention-dropout", "0", *extra, task="translation", arch=f"{method}_transformer", seed=seed)


def _layers(stack):
    from fairseq_admin.stabilizers import _StabilizedLayerMixin
    return [m for m in stack.modules() if isinstance(m, _StabilizedLayerMixin)]


def _ffn(layer, x):
    return layer.fc2(F.relu(layer.fc1(x)))


def _self_attn(layer, x, causal=False):
    mask = None
    if causal:
        t = x.shape[0]
        mask = torch.triu(torch.full((t, t), float("-inf")), 1)
    return layer.self_attn(query=x, key=x, value=x, attn_mask=mask, need_weights=False)[0]


def _cross(layer, x, memory):
    return layer.encoder_attn(query=x, key=memory, value=memory, static_kv=True, need_weights=False)[0]


def _expected_encoder(method, layer, x):
    if method == "b2t":
        y = layer.self_attn_layer_norm(x + _self_attn(layer, x))
        return layer.final_layer_norm(y + _ffn(layer, y) + x)
    if method in ("rezero", "tfixup"):
        a = layer.rezero_alpha if method == "rezero" else 1.0
        y = x + a * _self_attn(layer, x)
        return y + a * _ffn(layer, y)
    if method == "rezero_postln":
        a = layer.rezero_alpha
        y = layer.self_attn_layer_norm(x + a * _self_attn(layer, x))
        return layer.final_layer_norm(y + a * _ffn(layer, y))
    y = layer.self_attn_layer_norm(x + _self_attn(layer, x))  # dsinit: Post-LN
    return layer.final_layer_norm(y + _ffn(layer, y))


def _expected_decoder(method, layer, x, memory):
    if method == "b2t":
        y = layer.self_attn_layer_norm(x + _self_attn(layer, x, causal=True))
        z = layer.encoder_attn_layer_norm(y + _cross(layer, y, memory))
        return layer.final_layer_norm(z + _ffn(layer, z) + x)
    if method in ("rezero", "tfixup"):
        a = layer.rezero_alpha if method == "rezero" else 1.0
        y = x + a * _self_attn(layer, x, causal=True)
        z = y + a * _cross(layer, y, memory)
        return z + a * _ffn(layer, z)
    a = layer.rezero_alpha if method == "rezero_postln" else 1.0
    y = layer.self_attn_layer_norm(x + a * _self_attn(layer, x, causal=True))
    z = layer.encoder_attn_layer_norm(y + a * _cross(layer, y, memory))
    return layer.final_layer_norm(z + a * _ffn(layer, z))


@pytest.mark.parametrize("method", METHODS)
def test_forward_rule_matches_a_hand_written_layer(bin_data, method):
    _, _, model = _tiny(bin_data, method)
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in _layers(model):
            if hasattr(layer, "rezero_alpha"):
                layer.rezero_alpha.fill_(0.37)  # α = 0 at init would hide the branch
        enc, dec = _layers(model.encoder)[0], _layers(model.decoder)[0]
        x, memory = torch.randn(5, 3, 32), torch.randn(7, 3, 32)
        assert torch.allclose(enc(x, None), _expected_encoder(method, enc, x), atol=1e-5)
        t = x.shape[0]
        causal = torch.triu(torch.full((t, t), float("-inf")), 1)
        out = dec(x, memory, None, self_attn_mask=causal)[0]
        assert torch.allclose(out, _expected_decoder(method, dec, x, memory), atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_which_layer_norms_exist(bin_data, method):
    _, _, model = _tiny(bin_data, method)
    names = list(model.state_dict())
    has_ln = any("layer_norm" in n for n in names)
    assert has_ln == (method not in ("rezero", "tfixup")), names
    alphas = [n for n in names if n.endswith("rezero_alpha")]
    assert len(alphas) == (2 * LAYERS if method.startswith("rezero") else 0)
    assert all(model.state_dict()[n].item() == 0.0 for n in alphas)  # ReZero starts at α = 0
    assert model.encoder.layer_norm is None and model.decoder.layer_norm is None


@pytest.mark.parametrize("method", METHODS)
def test_incremental_decoding_matches_the_full_forward(bin_data, method):
    # fairseq-generate decodes one token at a time: the per-layer rule (B2T's saved input, ReZero's α)
    # must give what the full forward gives
    _, task, model = _tiny(bin_data, method)
    model.eval()
    with torch.no_grad():
        for layer in _layers(model):
            if hasattr(layer, "rezero_alpha"):
                layer.rezero_alpha.fill_(0.5)
        task.load_dataset("valid")
        ds = task.dataset("valid")
        sample = ds.collater([ds[i] for i in range(2)])
        net = sample["net_input"]
        enc = model.encoder(net["src_tokens"], src_lengths=net["src_lengths"])
        shortest = int(net["prev_output_tokens"].ne(task.target_dictionary.pad()).sum(1).min())
        prev = net["prev_output_tokens"][:, :min(6, shortest)]  # no padding: incremental decoding has none
        full = model.decoder(prev, encoder_out=enc)[0]
        state = {}
        steps = [model.decoder(prev[:, :i + 1], encoder_out=enc, incremental_state=state)[0][:, -1]
                 for i in range(prev.shape[1])]
        assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4)


def test_b2t_init_is_fairseq_default_scaled_by_depth(bin_data):
    layers = 3
    _, _, stock = build(bin_data, "--encoder-layers", layers, "--decoder-layers", layers, task="translation",
                        arch="transformer")
    _, _, b2t = _tiny(bin_data, "b2t", layers=layers)
    s, b = stock.state_dict(), b2t.state_dict()
    assert set(s) == set(b)
    scaled = 0
    for k, v in s.items():
        in_layer = ".layers." in k
        if in_layer and "weight" in k and "layer_norm" not in k:
            assert torch.allclose(b[k], v * layers ** -0.5, rtol=0, atol=1e-7), k
            scaled += 1
        else:
            assert torch.equal(b[k], v), k  # biases, LayerNorms, embeddings untouched
    assert scaled == layers * (4 + 2) + layers * (8 + 2)  # enc: q,k,v,out,fc1,fc2; dec: two attentions


@pytest.mark.parametrize("method", ["rezero", "rezero_postln"])
def test_rezero_init_is_the_reference_init(bin_data, method):
    _, _, ref = build(bin_data, task="translation", arch="refinit_transformer")
    _, _, rz = _tiny(bin_data, method)
    r, z = ref.state_dict(), rz.state_dict()
    for k, v in z.items():
        if k.endswith("rezero_alpha"):
            continue
        assert torch.equal(v, r[k]), k


def _std_matches_uniform(w, bound, tol=0.08):
    assert w.abs().max().item() <= bound * (1 + 1e-6)
    assert abs(w.std().item() - bound / math.sqrt(3)) <= tol * bound / math.sqrt(3), (w.std().item(), bound)


def test_tfixup_init_follows_the_authors_code(bin_data):
    n = m = 3
    _, _, stock = build(bin_data, "--encoder-layers", n, "--decoder-layers", m, task="translation", arch="transformer")
    _, _, tf = _tiny(bin_data, "tfixup", layers=n)
    s, t = stock.state_dict(), tf.state_dict()
    enc, dec = 0.67 * n ** -0.25, (9 * m) ** -0.25
    # shared embeddings (TINY): scaled once, by the encoder's (9N)^-1/4
    assert torch.allclose(t["encoder.embed_tokens.weight"], s["encoder.embed_tokens.weight"] * (9 * n) ** -0.25)
    for i in range(n):
        p = f"encoder.layers.{i}."
        for name in ("q_proj", "k_proj"):
            assert torch.equal(t[p + f"self_attn.{name}.weight"], s[p + f"self_attn.{name}.weight"])
        assert torch.allclose(t[p + "self_attn.v_proj.weight"], s[p + "self_attn.v_proj.weight"] * enc * math.sqrt(2))
        assert torch.allclose(t[p + "self_attn.out_proj.weight"], s[p + "self_attn.out_proj.weight"] * enc)
        for fc, shape in (("fc1", (64, 32)), ("fc2", (32, 64))):
            _std_matches_uniform(t[p + f"{fc}.weight"], math.sqrt(6 / sum(shape)) * enc)
            assert not t[p + f"{fc}.bias"].any()
    for i in range(m):
        p = f"decoder.layers.{i}."
        for attn in ("self_attn", "encoder_attn"):
            assert torch.allclose(t[p + f"{attn}.v_proj.weight"], s[p + f"{attn}.v_proj.weight"] * dec * math.sqrt(2))
            assert torch.allclose(t[p + f"{attn}.out_proj.weight"], s[p + f"{attn}.out_proj.weight"] * dec)
            assert torch.equal(t[p + f"{attn}.q_proj.weight"], s[p + f"{attn}.q_proj.weight"])
        for fc, shape in (("fc1", (64, 32)), ("fc2", (32, 64))):
            _std_matches_uniform(t[p + f"{fc}.weight"], math.sqrt(6 / sum(shape)) * dec)


def test_tfixup_scales_unshared_decoder_embeddings_by_decoder_depth(bin_data):
    args = [a for a in TINY if a != "--share-all-embeddings"]
    _, _, stock = build(bin_data, "--encoder-layers", 4, "--decoder-layers", 2, task="translation",
                        arch="transformer", tiny=args)
    _, _, tf = build(bin_data, "--encoder-layers", 4, "--decoder-layers", 2, task="translation",
                     arch="tfixup_transformer", tiny=args)
    assert tf.decoder.embed_tokens is not tf.encoder.embed_tokens
    s, t = stock.state_dict(), tf.state_dict()
    assert torch.allclose(t["encoder.embed_tokens.weight"], s["encoder.embed_tokens.weight"] * 36 ** -0.25)
    assert torch.allclose(t["decoder.embed_tokens.weight"], s["decoder.embed_tokens.weight"] * 18 ** -0.25)


@pytest.mark.parametrize("scaling,exponent", [("code", -0.25), ("readme", -0.5)])
def test_dsinit_bounds_per_projection_and_layer(bin_data, scaling, exponent):
    layers = 4
    _, _, model = build(bin_data, "--encoder-layers", layers, "--decoder-layers", layers,
                        "--encoder-ffn-embed-dim", 256, "--decoder-ffn-embed-dim", 256,
                        "--dsinit-scaling", scaling, task="translation", arch="dsinit_transformer")
    d, f = 32, 256
    assert dsinit_bound(d, 3 * d, 4, scaling) == pytest.approx(math.sqrt(6 / (4 * d)) * 4 ** exponent)
    for stack in (model.encoder, model.decoder):
        for l, layer in enumerate(_layers(stack), start=1):
            depth = l ** exponent
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                _std_matches_uniform(proj.weight, math.sqrt(6 / (4 * d)) * depth, tol=0.12)
            _std_matches_uniform(layer.self_attn.out_proj.weight, math.sqrt(6 / (2 * d)) * depth, tol=0.12)
            _std_matches_uniform(layer.fc1.weight, math.sqrt(6 / (d + f)) * depth)
            _std_matches_uniform(layer.fc2.weight, math.sqrt(6 / (d + f)) * depth)
            if getattr(layer, "encoder_attn", None) is not None:
                for proj in (layer.encoder_attn.q_proj, layer.encoder_attn.k_proj, layer.encoder_attn.v_proj):
                    _std_matches_uniform(proj.weight, math.sqrt(6 / (2 * d)) * depth, tol=0.12)
            for linear in (layer.self_attn.q_proj, layer.self_attn.out_proj, layer.fc1, layer.fc2):
                assert not linear.bias.any()


@pytest.mark.parametrize("method", METHODS)
def test_pre_ln_flags_are_refused(bin_data, method):
    with pytest.raises(AdminError, match=r"--encoder-normalize-before"):
        _tiny(bin_data, method, "--encoder-normalize-before")


@pytest.mark.parametrize("method", ["rezero", "tfixup"])
def test_layernorm_on_embeddings_refused_without_layer_norm(bin_data, method):
    with pytest.raises(AdminError, match=r"has no LayerNorm, but --layernorm-embedding"):
        _tiny(bin_data, method, "--layernorm-embedding")


def test_dependency_meter_counts_rezero_alpha(bin_data):
    from fairseq_admin.dependency import DependencyMeter
    _, task, model = _tiny(bin_data, "rezero")
    task.load_dataset("valid")
    ds = task.dataset("valid")
    sample = ds.collater([ds[i] for i in range(4)])
    with DependencyMeter(model) as meter:
        model(**sample["net_input"])
    assert meter.results()["beta2_enc_mean"] == 0.0  # α = 0: nothing of the branch reaches the output
    with torch.no_grad():
        for layer in _layers(model):
            layer.rezero_alpha.fill_(1.0)
    with DependencyMeter(model) as meter:
        model(**sample["net_input"])
    assert 0.0 < meter.results()["beta2_enc_mean"] < 1.0


def _lrs(stdout):
    return {int(u): float(lr) for u, lr in re.findall(r"num_updates\W+(\d+).*?\blr\W+([0-9.e-]+)", stdout)}


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_averages_and_generates_with_fairseq(bin_data, tmp_path, method):
    save = tmp_path / "save"
    extra = ["--lr-scheduler", "inverse_sqrt_nowarmup", "--decay-period", "2"] if method == "tfixup" else []
    proc = run_cli("fairseq_cli.train", bin_data, "--user-dir", USER_DIR, "--arch", f"{method}_transformer",
                   *TINY, "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000", "--max-update", "4",
                   "--save-interval-updates", "2", "--keep-interval-updates", "2", "--no-epoch-checkpoints",
                   "--save-dir", save, "--no-progress-bar", "--log-format", "simple", "--log-interval", "1",
                   "--seed", "3", "--num-workers", "0", "--cpu", *extra)
    log = proc.stdout + proc.stderr
    losses = [float(x) for x in re.findall(r"\| loss ([0-9.]+)", log)]
    assert losses and all(math.isfinite(x) for x in losses), log[-2000:]
    if method == "tfixup":  # lr · sqrt(P / (P + update)), no warmup
        lrs = _lrs(log)
        assert lrs and all(lr == pytest.approx(1e-3 * math.sqrt(2 / (2 + u)), rel=1e-3) for u, lr in lrs.items()), log
    from fairseq_admin.tools.cli import main as admin_cli  # the fairseq-admin command, in this process
    assert admin_cli(["average", str(save), "--updates", "--last", "2", "--output", str(tmp_path / "avg.pt")]) == 0
    states = [torch.load(save / f"checkpoint_{e}_{u}.pt", weights_only=False)["model"] for e, u in ((1, 2), (1, 4))
              if (save / f"checkpoint_{e}_{u}.pt").exists()] or [
        torch.load(p, weights_only=False)["model"] for p in sorted(save.glob("checkpoint_*_*.pt"))]
    averaged = torch.load(tmp_path / "avg.pt", weights_only=False)["model"]
    assert len(states) == 2 and set(averaged) == set(states[0])
    for key in [k for k in averaged if k.endswith(("rezero_alpha", "fc1.weight"))][:3]:
        assert torch.allclose(averaged[key], (states[0][key] + states[1][key]) / 2, atol=1e-6), key
    proc = run_cli("fairseq_cli.generate", bin_data, "--user-dir", USER_DIR, "--path", tmp_path / "avg.pt",
                   "--gen-subset", "test", "--beam", "2", "--max-len-a", "1", "--max-len-b", "5", "--batch-size", "50",
                   "--cpu", "--num-workers", "0")
    translated = int(re.search(r"Translated ([\d,]+) sentences", proc.stdout + proc.stderr).group(1))
    assert translated >= 90 and len(set(re.findall(r"^H-(\d+)\t", proc.stdout, flags=re.M))) == translated


def test_contradicting_option_is_one_line_from_fairseq_train(bin_data, tmp_path):
    proc = run_cli("fairseq_cli.train", bin_data, "--user-dir", USER_DIR, "--arch", "tfixup_transformer", *TINY,
                   "--encoder-normalize-before", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000",
                   "--max-update", "1", "--save-dir", tmp_path / "s", "--cpu", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.splitlines() if "error:" in l]
    assert len(lines) == 1 and "T-Fixup (Huang et al. 2020) has no LayerNorm" in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / "s" / "checkpoint_last.pt").exists()


def test_inverse_sqrt_nowarmup_refuses_bad_period(bin_data, tmp_path):
    proc = run_cli("fairseq_cli.train", bin_data, "--user-dir", USER_DIR, "--arch", "tfixup_transformer", *TINY,
                   "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt_nowarmup",
                   "--decay-period", "0", "--max-tokens", "1000", "--max-update", "1", "--save-dir", tmp_path / "s",
                   "--cpu", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "--decay-period 0: it must be at least 1" in proc.stderr
