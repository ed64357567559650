"""The models' options as fairseq dataclass configs, so that ``fairseq-hydra-train`` can set, check
and store them (``model.admin_init: logn``) as it does for fairseq's own dataclass models.

fairseq's translation Transformer keeps its argparse options flat (``--encoder-layers``) while its
``TransformerConfig`` nests them (``encoder.layers``). The configs here are flat, field for field the
argparse names, derived from ``TransformerConfig`` (nothing is copied by hand, so a fairseq release that
adds an option adds it here too), plus the options of this plugin. Defaults are those of fairseq's
``base_architecture``. Each named architecture (``admin_transformer_iwslt_de_en``, ...) is registered as a
model of its own with a config whose defaults are that architecture's: fairseq-hydra-train fills a
YAML's unset options from the registered config, so an architecture registered the argparse way alone
would get the base model's shape there, silently.
"""
import argparse
import dataclasses
from enum import Enum
from typing import Any, Callable, Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models.transformer import TransformerConfig
from omegaconf import OmegaConf

from .omega import OMEGA_INITS
from .weight_init import DEFAULT_WEIGHT_INIT, WEIGHT_INITS

#: fields of TransformerConfig whose flat (argparse) type differs from the nested one
_FLAT_TYPES = {"encoder_layers_to_keep": Optional[str], "decoder_layers_to_keep": Optional[str]}


def _flat_transformer_fields():
    """(name, type, field) of every option of fairseq's Transformer, flat as on the command line.
    Defaults that interpolate another option (``decoder.input_dim``) become None: the architecture
    function fills them from the option they follow, as it does for argparse."""
    out = []
    for f in dataclasses.fields(TransformerConfig):
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, type) and dataclasses.is_dataclass(default):  # encoder, decoder, quant_noise
            out += [(f"{f.name}_{g.name}", g.type, g) for g in dataclasses.fields(default) if g.name != "_name"]
        elif f.name != "_name":
            out.append((f.name, f.type, f))
    fields = []
    for name, typ, f in out:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, str) and default.startswith("${"):
            typ, default = Optional[typ], None
        typ = _FLAT_TYPES.get(name, typ)
        fields.append((name, typ, dataclasses.field(default=default, metadata=dict(f.metadata))))
    return fields


def _weight_init_field():
    return ("weight_init", ChoiceEnum(WEIGHT_INITS), dataclasses.field(
        default=DEFAULT_WEIGHT_INIT, metadata={
            "help": "initial weights of the projections: reference (default; the Admin paper's fairseq 0.8: "
                    "xavier-uniform FFN and attention, zero biases) or fairseq (fairseq 0.12's own, to compare "
                    "with models trained by stock fairseq)"}))


def _admin_fields():
    return [
        ("admin_init", ChoiceEnum(OMEGA_INITS), dataclasses.field(default="profile", metadata={
            "help": "how ω is initialised: profile (the paper: one forward pass over a training batch, needs "
                    "--task translation_admin), logn (analytic O(log N), no data), ones (plain Post-LN), "
                    "sqrtn (O(1)), deepnorm (DeepNet α and β)"})),
        ("admin_omega_fixed", bool, dataclasses.field(default=False, metadata={
            "help": "keep ω at its initial value instead of training it"})),
        ("admin_fix_first_omega", bool, dataclasses.field(default=False, metadata={
            "help": "keep ω of the first sublayer of each stack (which scales the embeddings) at its initial "
                    "value, so that `fairseq-admin fold` is exact"})),
        _weight_init_field(),
    ]


#: options of this plugin only (what ``add_args`` adds to fairseq's Transformer options)
AdminOptions = dataclasses.make_dataclass("AdminOptions", _admin_fields(), bases=(FairseqDataclass,))
RefInitOptions = dataclasses.make_dataclass("RefInitOptions", [_weight_init_field()], bases=(FairseqDataclass,))


def _derived_options(architecture: Callable, names) -> set:
    """The options whose default ``architecture`` takes from another option (``decoder_embed_dim`` follows
    ``encoder_embed_dim`` in fairseq's base_architecture): found by giving each option a marker value and
    seeing where else it lands."""
    derived = set()
    for source in names:
        marker = f"<{source}>"
        probe = argparse.Namespace(**{source: marker})
        try:
            architecture(probe)
        except Exception:  # an architecture that computes with the value (not a copy of it)
            continue
        derived |= {k for k, v in vars(probe).items() if v == marker and k != source}
    return derived


def model_config(name: str, admin, architecture: Optional[Callable] = None):
    """The flat dataclass config of a model: fairseq's Transformer options plus this plugin's (Admin's
    if ``admin`` is True, the baselines' ``weight_init`` if False, or ``admin`` itself when it is a list
    of (name, type, field) triples), with the defaults of ``architecture`` (a fairseq architecture
    function, applied to an empty namespace) where it sets one. Options whose default the architecture
    takes from another option (``decoder_embed_dim``, ``decoder_input_dim``) stay unset, so that they
    follow that option in a YAML as they do on the command line."""
    if isinstance(admin, list):
        own = admin
    else:
        own = _admin_fields() if admin else [_weight_init_field()]
    fields = _flat_transformer_fields() + own
    if architecture is not None:
        defaults = argparse.Namespace()
        architecture(defaults)
        derived = _derived_options(architecture, [n for n, _, _ in fields])
        out = []
        for n, t, f in fields:
            if n in derived:
                f = dataclasses.field(default=None, metadata=f.metadata)
                t = Optional[t]
            elif hasattr(defaults, n) and f.default is not None and not isinstance(getattr(defaults, n), Enum):
                f = dataclasses.field(default=getattr(defaults, n), metadata=f.metadata)
            out.append((n, t, f))
        fields = out
    return dataclasses.make_dataclass(name, fields, bases=(FairseqDataclass,))


def to_namespace(cfg: Any) -> argparse.Namespace:
    """The model options as the argparse namespace fairseq's Transformer builds from, whatever fairseq
    passed: a namespace (command line), a DictConfig (hydra), a dict (a checkpoint's) or a dataclass instance.
    Unset options (None) are left out, so that the architecture function fills them."""
    if isinstance(cfg, argparse.Namespace):
        return cfg
    if OmegaConf.is_config(cfg):
        values = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    elif dataclasses.is_dataclass(cfg):
        values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    elif isinstance(cfg, dict):  # a DictConfig as a checkpoint stores it
        values = dict(cfg)
    else:
        values = dict(vars(cfg))
    values = {k: (v.value if isinstance(v, Enum) else v) for k, v in values.items()}
    return argparse.Namespace(**{k: v for k, v in values.items() if v is not None})
