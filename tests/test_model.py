"""The Admin model against fairseq's own Post-LN transformer, and its ω initialisations."""
import pytest
import torch

from conftest import USER_DIR, build
from fairseq_admin import AdminError
from fairseq_admin.omega import analytic_omega, deepnorm_constants


def _batch(task, n=6):
    task.load_dataset("valid")
    ds = task.dataset("valid")
    return ds.collater([ds[i] for i in range(n)])


def _forward(model, sample, train, seed=0):
    model.train(train)
    with torch.no_grad():
        torch.manual_seed(seed)
        return model(**sample["net_input"])[0]


@pytest.mark.parametrize("baseline,weight_init", [("transformer", "fairseq"),
                                                  ("refinit_transformer", "reference")])
def test_ones_reproduces_post_ln_transformer(bin_data, baseline, weight_init):
    # Admin with ω = 1 is the Post-LN baseline of the same initialisation: fairseq's own transformer
    # (--weight-init fairseq), or the plugin's reference-initialised one (the default)
    _, task, stock = build(bin_data, task="translation", arch=baseline)
    _, _, admin = build(bin_data, "--admin-init", "ones", "--weight-init", weight_init, task="translation")
    stock_state, admin_state = stock.state_dict(), admin.state_dict()
    extra = set(admin_state) - set(stock_state)
    assert extra and all(k.endswith("_omega.omega") for k in extra)
    assert set(stock_state) <= set(admin_state)
    for k, v in stock_state.items():  # same seed -> the very same initial weights
        assert torch.equal(v, admin_state[k]), k
    sample = _batch(task)
    for train in (False, True):  # eval, and training mode with the same dropout masks
        assert torch.allclose(_forward(stock, sample, train), _forward(admin, sample, train), atol=0, rtol=0)


def test_eval_output_equals_train_output_without_dropout(bin_data):
    _, task, model = build(bin_data, "--admin-init", "logn", "--dropout", "0", "--attention-dropout", "0")
    sample = _batch(task)
    assert torch.allclose(_forward(model, sample, False), _forward(model, sample, True), atol=1e-6)
    # and ω really acts in eval mode: changing it changes the output
    before = _forward(model, sample, False)
    model.residual_scales("encoder")[0].fill_(3.0)
    assert not torch.allclose(before, _forward(model, sample, False), atol=1e-4)


def test_analytic_and_deepnorm_initialisation(bin_data):
    _, _, logn = build(bin_data, "--admin-init", "logn", "--admin-omega-fixed")
    enc, dec = logn.residual_scales("encoder"), logn.residual_scales("decoder")
    assert len(enc) == 4 and len(dec) == 6
    assert torch.allclose(enc[0].omega, torch.full((32,), analytic_omega(4, "logn")))
    assert torch.allclose(dec[-1].omega, torch.full((32,), analytic_omega(6, "logn")))
    assert not any(s.omega.requires_grad for s in enc + dec)

    # --weight-init fairseq: β multiplies fairseq 0.12's own weights (the reference init: test_weight_init)
    _, _, ones = build(bin_data, "--admin-init", "ones", "--weight-init", "fairseq")
    _, _, deep = build(bin_data, "--admin-init", "deepnorm", "--weight-init", "fairseq")
    c = deepnorm_constants(2, 2)
    assert deep.residual_scales("decoder")[0].omega[0].item() == pytest.approx(c["decoder_alpha"])
    assert ones.residual_scales("decoder")[0].omega.requires_grad
    l_ones, l_deep = ones.encoder.layers[0], deep.encoder.layers[0]
    assert torch.allclose(l_deep.fc1.weight, l_ones.fc1.weight * c["encoder_beta"])
    assert torch.equal(l_deep.self_attn.q_proj.weight, l_ones.self_attn.q_proj.weight)


@pytest.mark.parametrize("flag", ["--encoder-normalize-before", "--decoder-normalize-before"])
def test_pre_ln_is_rejected(bin_data, flag):
    with pytest.raises(AdminError, match="normalize-before"):
        build(bin_data, flag, "--admin-init", "logn")


def test_unprofiled_model_refuses_to_train(bin_data):
    _, task, model = build(bin_data, task="translation")  # profile init, but a task that cannot profile
    with pytest.raises(AdminError, match="translation_admin"):
        _forward(model, _batch(task), True)


@pytest.mark.parametrize("model_name", ["admin_transformer", "refinit_transformer"])
def test_dataclass_config_builds_the_same_model_as_the_command_line(bin_data, model_name):
    # fairseq-hydra-train passes the model a DictConfig merged with its registered dataclass: the same
    # options must give the same model (shapes, ω, initial weights) as the argparse flags do
    from fairseq.dataclass.utils import merge_with_parent
    from fairseq.models import MODEL_DATACLASS_REGISTRY, build_model
    from omegaconf import OmegaConf

    extra = ("--admin-init", "logn") if model_name == "admin_transformer" else ()
    cfg, task, model = build(bin_data, *extra, arch=model_name)
    dc = MODEL_DATACLASS_REGISTRY[model_name]
    yaml = {"_name": model_name, "encoder_layers": 2, "decoder_layers": 2, "encoder_embed_dim": 32,
            "decoder_embed_dim": 32, "encoder_ffn_embed_dim": 64, "decoder_ffn_embed_dim": 64,
            "encoder_attention_heads": 2, "decoder_attention_heads": 2, "share_all_embeddings": True}
    if model_name == "admin_transformer":
        yaml["admin_init"] = "logn"
    torch.manual_seed(7)
    hydra_model = build_model(OmegaConf.create(yaml), task)
    assert hydra_model.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(v, hydra_model.state_dict()[k]), k
    # the dataclass checks what a YAML file sets: an unknown key or choice is refused, not ignored
    with pytest.raises(Exception, match="admin_innit|weight_innit"):
        merge_with_parent(dc(), OmegaConf.create({**yaml, "admin_innit" if "admin" in model_name else "weight_innit": 1}))
    with pytest.raises(Exception, match="expected one of"):
        merge_with_parent(dc(), OmegaConf.create({**yaml, "weight_init": "kaiming"}))


@pytest.mark.parametrize("arch,opts", [
    ("admin_transformer_iwslt_de_en", {}), ("admin_transformer_wmt_en_de_18_18", {}),
    ("refinit_transformer_iwslt_de_en", {}),
    # options whose default follows another one's (the decoder's width follows the encoder's)
    ("admin_transformer", {"encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128}),
])
def test_named_architectures_keep_their_shape_in_hydra_configs(bin_data, arch, opts):
    # fairseq-hydra-train fills a YAML's unset model options from the dataclass registered for its _name
    # (fairseq.dataclass.initialize.add_defaults): a named architecture must bring its own defaults there,
    # as --arch does on the command line, not the base model's
    from fairseq.dataclass.utils import merge_with_parent
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY, MODEL_DATACLASS_REGISTRY, build_model
    from omegaconf import OmegaConf

    def shape(m):
        return {k: tuple(v.shape) for k, v in m.state_dict().items()}

    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    _, task, _ = build(bin_data)
    yaml = OmegaConf.create({"_name": arch, "share_all_embeddings": True, **opts})
    merged = merge_with_parent(MODEL_DATACLASS_REGISTRY[ARCH_MODEL_NAME_REGISTRY.get(arch, arch)](), yaml)
    args = options.parse_args_and_arch(options.get_training_parser(), [
        "D", "--user-dir", USER_DIR, "--task", "translation_admin", "--arch", arch, "--share-all-embeddings",
        *[x for k, v in opts.items() for x in ("--" + k.replace("_", "-"), str(v))]])
    torch.manual_seed(1)
    from_yaml = build_model(merged, task)
    torch.manual_seed(1)
    from_flags = build_model(convert_namespace_to_omegaconf(args).model, task)
    assert shape(from_yaml) == shape(from_flags)
    layers = 18 if "18_18" in arch else 6
    ffn, width = (1024 if "iwslt" in arch else opts.get("encoder_ffn_embed_dim", 2048)), opts.get("encoder_embed_dim", 512)
    assert len(from_yaml.encoder.layers) == len(from_yaml.decoder.layers) == layers
    assert from_yaml.encoder.layers[0].fc1.weight.shape == from_yaml.decoder.layers[0].fc1.weight.shape == (ffn, width)
