"""The other deep-Transformer stabilisers, beside Admin, each as its authors' code defines it.

Every method is fairseq's Transformer with its own encoder/decoder layers (the same public
``residual_connection(x, residual)`` hook the Admin layers use) and its own initialisation, selected by
architecture name (``--arch b2t_transformer``, ``rezero_transformer_wmt_en_de``, ...). N, M: encoder and
decoder layers; F: a sublayer's branch (attention or FFN, with its dropout); LN: LayerNorm.

b2t (``b2t_transformer``): Takase et al., "B2T Connection: Serving Stability and Performance in Deep
    Transformers", arXiv:2206.00330; code takase/b2t_connection (fairseq 0.9),
    fairseq/modules/transformer_layer.py, ``residual_bottom_to_top`` and ``rescaling_init``.
    Post-LN sublayers, and before the last LN of each layer the layer's input x is added once more:
    encoder y = LN(x + Attn(x)), out = LN(y + FFN(y) + x); decoder the same with self- and
    cross-attention before the FFN (x skips both earlier LNs). Initialisation: fairseq 0.9's defaults
    (which fairseq 0.12 keeps: q/k/v xavier-uniform gain 1/√2, out_proj xavier-uniform with zero bias,
    fc1/fc2 PyTorch's default), then every weight of a layer whose name contains "weight" and not
    "layer_norm" multiplied by L^-1/2, L = that stack's depth (biases and LayerNorms untouched). The
    code's LayerNorm-free variant (``no_layer_norm``, other residual/output scales) is not offered.
rezero (``rezero_transformer``): Bachlechner et al., "ReZero is All You Need", arXiv:2003.04887, as
    the Admin paper's fork defines it (LiyuanLucasLiu/Transformer-Clinic, fairseq 0.8,
    ``--init-type rezero``): x ← x + α·F(x), no LayerNorm anywhere, one scalar α per layer shared by
    its sublayers, initialised to 0; the rest of the weights as the Admin reference (xavier-uniform,
    zero biases; see weight_init).
rezero_postln (``rezero_postln_transformer``): the fork's ``--init-type rezero_postln``:
    x ← LN(x + α·F(x)), with the same α and initialisation.
tfixup (``tfixup_transformer``): Huang et al., "Improving Transformer Optimization Through Better
    Initialization", ICML 2020; code layer6ai-labs/T-Fixup (fairseq 0.9, ``--Tfixup
    --dont-use-layernorm``): x ← x + F(x), no LayerNorm anywhere, and no warmup (the authors train with
    ``inverse_sqrt_nowarmup``, registered by this plugin: lr·sqrt(P/(P + update))). Initialisation:
    fairseq's attention (q/k/v xavier-uniform gain 1/√2, out_proj xavier-uniform) and fc1/fc2
    xavier-uniform with zero bias; then encoder fc1, fc2, self_attn.out_proj × 0.67·N^-1/4 and
    self_attn.v_proj × 0.67·N^-1/4·√2; decoder fc1, fc2, self_attn.out_proj, encoder_attn.out_proj ×
    (9M)^-1/4 and both v_proj × (9M)^-1/4·√2; the encoder's token embeddings (N(0, d^-1/2)) × (9N)^-1/4
    and the decoder's × (9M)^-1/4 (not again when --share-all-embeddings shares them). The code scales
    the encoder's embeddings with N, where a summary of the paper reads (9M)^-1/4 for both: the code is
    followed.
dsinit (``dsinit_transformer``): Zhang et al., "Improving Deep Transformer with Depth-Scaled
    Initialization and Merged Attention", arXiv:1908.11365; code bzhangGo/zero (TensorFlow),
    ``deep_transformer_init``: Post-LN, every projection of layer l (1-based, per stack) drawn from
    U(±b), zero biases. The code calls ``variance_scaling_initializer(gain·l^-1/2, fan_avg, uniform)``,
    so b = sqrt(6 / (fan_in + fan_out))·sqrt(gain)·l^-1/4; the README writes b = γ·α/√l with γ the same
    xavier bound, i.e. l^-1/2. ``--dsinit-scaling code`` (the default, used by every result here) or
    ``readme``; gain = α = 1 as in the authors' translation recipe. Fans as the code's shapes: self-attention's
    q, k, v are one d × 3d matrix (fan 4d), cross-attention's q, k, v three d × d ones. The merged
    attention of the same paper is not implemented.

Each method's options that would contradict it are refused in one line (Pre-LN flags for all of them,
a LayerNorm on the embeddings for the two without LayerNorm).
"""
import dataclasses
import math

import torch
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.models.transformer import (
    TransformerConfig,
    TransformerDecoderBase,
    TransformerEncoderBase,
    TransformerModel,
    base_architecture,
    transformer_iwslt_de_en,
    transformer_vaswani_wmt_en_de_big,
    transformer_wmt_en_de,
)
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase, TransformerEncoderLayerBase
from torch import nn

from .config import to_namespace
from .errors import AdminError
from .hooks import transformer_layers
from .layers import _FAST_PATH_FLAGS, _wrap
from .model import register_architectures
from .weight_init import apply_reference_init

#: the methods, in the order of the README's table
METHODS = ("b2t", "rezero", "rezero_postln", "tfixup", "dsinit")
#: methods without any LayerNorm
NO_LAYER_NORM = ("rezero", "tfixup")
#: --dsinit-scaling: the bound's depth exponent as in the code (l^-1/4) or in the README (l^-1/2)
DSINIT_SCALINGS = ("code", "readme")

DESCRIPTIONS = {
    "b2t": "B2T connection (Takase et al. 2022)",
    "rezero": "ReZero (Bachlechner et al. 2020)",
    "rezero_postln": "ReZero with Post-LN (the Admin paper's fork)",
    "tfixup": "T-Fixup (Huang et al. 2020)",
    "dsinit": "DS-Init (Zhang et al. 2019)",
}


class _StabilizedLayerMixin:
    """The residual rule of one method, through fairseq's residual_connection hook."""

    method = None

    def _setup(self, method: str) -> None:
        self.method = method
        if method in NO_LAYER_NORM:  # the method has no LayerNorm: none is built, none is in the state dict
            self.self_attn_layer_norm = nn.Identity()
            self.final_layer_norm = nn.Identity()
            if getattr(self, "encoder_attn_layer_norm", None) is not None:
                self.encoder_attn_layer_norm = nn.Identity()
        if method in ("rezero", "rezero_postln"):
            self.rezero_alpha = nn.Parameter(torch.zeros(1))  # one per layer, shared by its sublayers
        for flag in _FAST_PATH_FLAGS:  # never let a fused kernel skip the residual rule
            if hasattr(self, flag):
                setattr(self, flag, False)
        self._b2t_bottom = None
        self._b2t_left = 0

    def residual_connection(self, x, residual):
        if self.method in ("rezero", "rezero_postln"):
            return residual + self.rezero_alpha * x
        out = residual + x
        if self.method == "b2t":
            self._b2t_left -= 1
            if self._b2t_left == 0:  # the layer's last sublayer: add the layer's input before its last LN
                out = out + self._b2t_bottom
                self._b2t_bottom = None
        return out

    def dependency_branch(self, x):
        """What this layer adds to its shortcut for a branch output x (read by the β² meter)."""
        if self.method in ("rezero", "rezero_postln"):
            return self.rezero_alpha * x
        return x

    def _run(self, sublayers: int, forward, x, *args, **kwargs):
        if self.method != "b2t":
            return forward(x, *args, **kwargs)
        self._b2t_bottom, self._b2t_left = x, sublayers
        out = forward(x, *args, **kwargs)
        if self._b2t_left != 0:
            left, self._b2t_left, self._b2t_bottom = self._b2t_left, 0, None
            raise AdminError(
                f"{type(self).__name__}: the B2T connection expected {sublayers} residual sublayers, "
                f"{sublayers - left} reached residual_connection; this fairseq version bypassed it: please report it")
        return out


class StabilizedEncoderLayer(_StabilizedLayerMixin, TransformerEncoderLayerBase):
    def __init__(self, cfg, method, return_fc=False):
        super().__init__(cfg, return_fc=return_fc)
        self._setup(method)

    def forward(self, x, encoder_padding_mask, attn_mask=None):
        return self._run(2, super().forward, x, encoder_padding_mask, attn_mask)


class StabilizedDecoderLayer(_StabilizedLayerMixin, TransformerDecoderLayerBase):
    def __init__(self, cfg, method, no_encoder_attn=False, add_bias_kv=False, add_zero_attn=False):
        super().__init__(cfg, no_encoder_attn, add_bias_kv, add_zero_attn)
        self._setup(method)

    def forward(self, x, encoder_out=None, *args, **kwargs):
        sublayers = 3 if self.encoder_attn is not None and encoder_out is not None else 2
        return self._run(sublayers, super().forward, x, encoder_out, *args, **kwargs)


class StabilizedTransformerEncoder(TransformerEncoderBase):
    def __init__(self, cfg, dictionary, embed_tokens, method, return_fc=False):
        self.method = method  # a plain attribute, read by build_encoder_layer during super().__init__
        super().__init__(cfg, dictionary, embed_tokens, return_fc=return_fc)

    def build_encoder_layer(self, cfg):
        return _wrap(StabilizedEncoderLayer(cfg, self.method, return_fc=self.return_fc), cfg)


class StabilizedTransformerDecoder(TransformerDecoderBase):
    def __init__(self, cfg, dictionary, embed_tokens, method, no_encoder_attn=False):
        self.method = method
        super().__init__(cfg, dictionary, embed_tokens, no_encoder_attn=no_encoder_attn)

    def build_decoder_layer(self, cfg, no_encoder_attn=False):
        return _wrap(StabilizedDecoderLayer(cfg, self.method, no_encoder_attn), cfg)


def check_options(method: str, arch: str, args) -> None:
    """One line for an option that contradicts the method."""
    if getattr(args, "encoder_normalize_before", False) or getattr(args, "decoder_normalize_before", False):
        kind = "has no LayerNorm" if method in NO_LAYER_NORM else "is a Post-LN method"
        raise AdminError(
            f"--arch {arch}: {DESCRIPTIONS[method]} {kind}, but --encoder-normalize-before/"
            "--decoder-normalize-before ask for Pre-LN: drop them (for Pre-LN use --arch refinit_transformer with them)")
    if method in NO_LAYER_NORM and getattr(args, "layernorm_embedding", False):
        raise AdminError(
            f"--arch {arch}: {DESCRIPTIONS[method]} has no LayerNorm, but --layernorm-embedding adds one: drop it")
    scaling = getattr(args, "dsinit_scaling", "code")
    if method == "dsinit" and scaling not in DSINIT_SCALINGS:
        raise AdminError(f"--dsinit-scaling {scaling!r}: choose one of {', '.join(DSINIT_SCALINGS)}")


@torch.no_grad()
def _uniform_(weight: torch.Tensor, bound: float) -> None:
    weight.uniform_(-bound, bound)


@torch.no_grad()
def b2t_rescale_(stack: nn.Module, depth: int) -> None:
    """rescaling_init: every layer weight (not LayerNorm's, not a bias) × depth^-1/2."""
    for layer in transformer_layers(stack):
        for name, p in layer.named_parameters():
            if "weight" in name and "layer_norm" not in name:
                p.mul_(depth ** -0.5)


@torch.no_grad()
def tfixup_init_(model, encoder_layers: int, decoder_layers: int) -> None:
    """T-Fixup's initialisation (see the module docstring)."""
    for stack in (model.encoder, model.decoder):
        for layer in transformer_layers(stack):
            for linear in (layer.fc1, layer.fc2):  # fairseq 0.9's Linear(): xavier-uniform, zero bias
                nn.init.xavier_uniform_(linear.weight)
                if linear.bias is not None:
                    linear.bias.zero_()
    enc = 0.67 * encoder_layers ** -0.25
    for layer in transformer_layers(model.encoder):
        for p in (layer.fc1.weight, layer.fc2.weight, layer.self_attn.out_proj.weight):
            p.mul_(enc)
        layer.self_attn.v_proj.weight.mul_(enc * math.sqrt(2))
    dec = (9 * decoder_layers) ** -0.25
    for layer in transformer_layers(model.decoder):
        attns = [layer.self_attn] + ([layer.encoder_attn] if layer.encoder_attn is not None else [])
        for p in [layer.fc1.weight, layer.fc2.weight] + [a.out_proj.weight for a in attns]:
            p.mul_(dec)
        for a in attns:
            a.v_proj.weight.mul_(dec * math.sqrt(2))
    model.encoder.embed_tokens.weight.mul_((9 * encoder_layers) ** -0.25)
    if model.decoder.embed_tokens is not model.encoder.embed_tokens:
        model.decoder.embed_tokens.weight.mul_((9 * decoder_layers) ** -0.25)


def dsinit_bound(fan_in: int, fan_out: int, layer: int, scaling: str = "code") -> float:
    """DS-Init's uniform bound for a projection of layer ``layer`` (1-based)."""
    xavier = math.sqrt(6.0 / (fan_in + fan_out))
    return xavier * (layer ** -0.25 if scaling == "code" else layer ** -0.5)


@torch.no_grad()
def dsinit_init_(stack: nn.Module, scaling: str) -> None:
    """DS-Init's initialisation of one stack (see the module docstring)."""
    for index, layer in enumerate(transformer_layers(stack), start=1):
        attn = layer.self_attn
        d = attn.q_proj.weight.shape[1]
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):  # one fused d x 3d matrix in the code
            _uniform_(proj.weight, dsinit_bound(d, 3 * d, index, scaling))
        linears = [attn.out_proj, layer.fc1, layer.fc2]
        cross = getattr(layer, "encoder_attn", None)
        if cross is not None:
            linears += [cross.q_proj, cross.k_proj, cross.v_proj, cross.out_proj]
        for linear in linears:
            fan_out, fan_in = linear.weight.shape
            _uniform_(linear.weight, dsinit_bound(fan_in, fan_out, index, scaling))
        for linear in [attn.q_proj, attn.k_proj, attn.v_proj] + linears:
            if linear.bias is not None:
                linear.bias.zero_()


def initialize_method(model, method: str, args) -> None:
    """The method's initialisation of a freshly built model."""
    n, m = len(transformer_layers(model.encoder)), len(transformer_layers(model.decoder))
    if method in ("rezero", "rezero_postln"):
        apply_reference_init(model)  # α is 0 from construction
    elif method == "b2t":
        b2t_rescale_(model.encoder, n)
        b2t_rescale_(model.decoder, m)
    elif method == "tfixup":
        tfixup_init_(model, n, m)
    elif method == "dsinit":
        scaling = getattr(args, "dsinit_scaling", "code")
        dsinit_init_(model.encoder, scaling)
        dsinit_init_(model.decoder, scaling)
    else:
        raise AdminError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")


def _method_fields(method: str):
    if method != "dsinit":
        return []
    return [("dsinit_scaling", ChoiceEnum(DSINIT_SCALINGS), dataclasses.field(default="code", metadata={
        "help": "DS-Init's depth scaling of the uniform bound: code (the authors' code, l^-1/4; default) or "
                "readme (their README's formula, l^-1/2)"}))]


class StabilizedTransformerModel(TransformerModel):
    """fairseq's Transformer with one of the stabilisers of this module (``method``)."""

    method = None
    architecture = None
    arch_name = None

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        fields = _method_fields(cls.method)
        if fields:
            options = dataclasses.make_dataclass(f"{cls.__name__}Options", fields, bases=(FairseqDataclass,))
            gen_parser_from_dataclass(parser, options(), delete_default=True)

    @classmethod
    def build_model(cls, args, task):
        args = to_namespace(args)
        cls.architecture(args)
        check_options(cls.method, getattr(args, "arch", None) or cls.arch_name, args)
        model = super().build_model(args, task)
        initialize_method(model, cls.method, args)
        return model

    @classmethod
    def build_encoder(cls, args, src_dict, embed_tokens):
        return StabilizedTransformerEncoder(TransformerConfig.from_namespace(args), src_dict, embed_tokens, cls.method)

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        cfg = TransformerConfig.from_namespace(args)
        return StabilizedTransformerDecoder(cfg, tgt_dict, embed_tokens, cls.method,
                                            no_encoder_attn=cfg.no_cross_attention)


def _architectures(method: str):
    def base(args):
        if method == "dsinit":
            args.dsinit_scaling = getattr(args, "dsinit_scaling", None) or "code"
        base_architecture(args)

    def shaped(shape):
        def architecture(args):
            shape(args)
            base(args)
        return architecture

    return {
        f"{method}_transformer": base,
        f"{method}_transformer_iwslt_de_en": shaped(transformer_iwslt_de_en),
        f"{method}_transformer_wmt_en_de": shaped(transformer_wmt_en_de),
        f"{method}_transformer_wmt_en_de_big": shaped(transformer_vaswani_wmt_en_de_big),
    }


#: architecture name -> method, for every architecture this module registers
ARCHITECTURES = {}
for _method in METHODS:
    _camel = "".join(part.capitalize() for part in _method.split("_"))
    _base = type(f"{_camel}TransformerModel", (StabilizedTransformerModel,), {
        "__doc__": f"{DESCRIPTIONS[_method]}: see fairseq_admin.stabilizers", "method": _method,
        "arch_name": f"{_method}_transformer"})
    _archs = _architectures(_method)
    register_architectures(_base, _archs, admin=_method_fields(_method))
    ARCHITECTURES.update({name: _method for name in _archs})
