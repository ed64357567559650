"""The Admin Transformer model and its architectures (arXiv:2004.08249, section 4.3).

Nothing differs from fairseq's Post-LN ``transformer`` but ω on every shortcut; ω is filled
according to --admin-init when the model is built (``profile`` leaves it at 1 for the task to
profile).
"""
import logging
from typing import List

from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.models import register_model
from fairseq.models.transformer import (
    TransformerConfig,
    TransformerModel,
    base_architecture,
    transformer_iwslt_de_en,
    transformer_vaswani_wmt_en_de_big,
    transformer_wmt_en_de,
)

from .config import AdminOptions, model_config, to_namespace
from .errors import AdminError
from .layers import AdminDecoderLayer, AdminEncoderLayer, AdminTransformerDecoder, AdminTransformerEncoder
from .omega import OMEGA_INITS, analytic_omega, deepnorm_constants
from .residual import ResidualScale
from .weight_init import DEFAULT_WEIGHT_INIT, apply_deepnorm_init, initialize_weights

logger = logging.getLogger(__name__)

STACKS = ("encoder", "decoder")


class AdminTransformerModel(TransformerModel):
    """Post-LN Transformer whose shortcuts are scaled by ω (Admin).

    Options: fairseq's Transformer's and AdminOptions (``config.py``); on the command line as flags,
    in ``fairseq-hydra-train`` YAML as ``model.*`` keys (each architecture is registered with its
    dataclass config, see ``register_architectures``)."""

    #: fills the options a config leaves unset (the registered architecture's defaults)
    architecture = None

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)  # fairseq's Transformer options, without defaults (the arch sets them)
        gen_parser_from_dataclass(parser, AdminOptions(), delete_default=True)

    @classmethod
    def build_model(cls, args, task):
        args = to_namespace(args)  # argparse, hydra and checkpoints pass different kinds of config
        cls.architecture(args)
        if args.encoder_normalize_before or args.decoder_normalize_before:
            raise AdminError(
                "Admin rescales the shortcut of a Post-LN Transformer, but --encoder-normalize-before/"
                "--decoder-normalize-before ask for Pre-LN: drop them (for a Pre-LN baseline use "
                "--arch transformer with those flags)")
        model = super().build_model(args, task)
        model.admin_init = args.admin_init
        initialize_weights(model, args.weight_init)
        initialize_omegas(model, args.admin_init, learnable=not args.admin_omega_fixed,
                          fix_first=args.admin_fix_first_omega, weight_init=args.weight_init)
        return model

    @classmethod
    def build_encoder(cls, args, src_dict, embed_tokens):
        return AdminTransformerEncoder(TransformerConfig.from_namespace(args), src_dict, embed_tokens)

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        cfg = TransformerConfig.from_namespace(args)
        return AdminTransformerDecoder(cfg, tgt_dict, embed_tokens, no_encoder_attn=cfg.no_cross_attention)

    # --- ω bookkeeping -------------------------------------------------------------------------
    admin_init = "ones"
    omega_ready = True  # False until a profile (or a checkpoint) has set ω

    def residual_scales(self, stack: str) -> List[ResidualScale]:
        """All ω modules of the encoder or decoder, in forward order."""
        layer_type = AdminEncoderLayer if stack == "encoder" else AdminDecoderLayer
        part = self.encoder if stack == "encoder" else self.decoder
        return [s for m in part.modules() if isinstance(m, layer_type) for s in m.residual_scales()]

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        out = super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
        self.omega_ready = True  # ω comes from the checkpoint
        return out

    def forward(self, src_tokens, src_lengths, prev_output_tokens, **kwargs):
        if self.training and not self.omega_ready:
            raise AdminError(
                "ω was never profiled: train --admin-init profile models with --task translation_admin "
                "(or pass --admin-init logn for the analytic initialisation)")
        return super().forward(src_tokens, src_lengths, prev_output_tokens, **kwargs)


def initialize_omegas(model: AdminTransformerModel, init: str, learnable: bool = True,
                      fix_first: bool = False, weight_init: str = DEFAULT_WEIGHT_INIT) -> None:
    """Fill every ω of the model for the given --admin-init (profile: 1, filled later by the task).
    DeepNorm's α is a constant: with ``deepnorm`` ω is never trained, and the stack's weights get
    DeepNet's β initialisation (exact with the reference --weight-init)."""
    if init not in OMEGA_INITS:
        raise AdminError(f"unknown --admin-init {init!r}: choose one of {', '.join(OMEGA_INITS)}")
    deepnorm = deepnorm_constants(len(model.encoder.layers), len(model.decoder.layers))
    for stack in STACKS:
        scales = model.residual_scales(stack)
        if init == "profile":
            value = 1.0
        elif init == "deepnorm":
            value = deepnorm[f"{stack}_alpha"]
            apply_deepnorm_init(getattr(model, stack), deepnorm[f"{stack}_beta"], weight_init)
        else:
            value = analytic_omega(len(scales), init)
        for i, scale in enumerate(scales):
            scale.fill_(value)
            scale.omega.requires_grad_(learnable and init != "deepnorm" and not (fix_first and i == 0))
    model.omega_ready = init != "profile"
    if init != "profile":
        logger.info("Admin ω initialised with --admin-init %s: encoder %.4f, decoder %.4f%s", init,
                    model.residual_scales("encoder")[0].omega[0].item(),
                    model.residual_scales("decoder")[0].omega[0].item(),
                    "" if learnable and init != "deepnorm" else " (fixed)")


# --- architectures: fairseq's own shapes, Post-LN, ω initialised by --admin-init ---------------------
# Each is registered as a model (a subclass, same code) with a dataclass config holding its defaults,
# so that fairseq-train --arch NAME and fairseq-hydra-train model._name=NAME give the same model.

def admin_base_architecture(args):
    args.admin_init = getattr(args, "admin_init", None) or "profile"
    args.admin_omega_fixed = getattr(args, "admin_omega_fixed", False)
    args.admin_fix_first_omega = getattr(args, "admin_fix_first_omega", False)
    args.weight_init = getattr(args, "weight_init", None) or DEFAULT_WEIGHT_INIT
    base_architecture(args)


def admin_transformer_iwslt_de_en(args):
    transformer_iwslt_de_en(args)
    admin_base_architecture(args)


def admin_transformer_wmt_en_de(args):
    transformer_wmt_en_de(args)
    admin_base_architecture(args)


def admin_transformer_wmt_en_de_18_18(args):
    args.encoder_layers = getattr(args, "encoder_layers", 18)
    args.decoder_layers = getattr(args, "decoder_layers", 18)
    admin_transformer_wmt_en_de(args)


def admin_transformer_wmt_en_de_60_12(args):
    args.encoder_layers = getattr(args, "encoder_layers", 60)
    args.decoder_layers = getattr(args, "decoder_layers", 12)
    admin_transformer_wmt_en_de(args)


def admin_transformer_wmt_en_de_big(args):
    transformer_vaswani_wmt_en_de_big(args)
    admin_base_architecture(args)


def register_architectures(base, architectures, admin) -> None:
    """Register ``base`` under the first name and a subclass of it under each other name, each with the
    dataclass config of its architecture's defaults (``admin``: see ``config.model_config``)."""
    for i, (name, architecture) in enumerate(architectures.items()):
        camel = "".join(part.capitalize() for part in name.split("_"))
        cls = base if i == 0 else type(f"{camel}Model", (base,), {
            "__doc__": f"{base.__name__} with the defaults of the {name} architecture"})
        cls.architecture = staticmethod(architecture)
        register_model(name, dataclass=model_config(f"{camel}Config", admin, architecture))(cls)


ARCHITECTURES = {
    "admin_transformer": admin_base_architecture,
    "admin_transformer_iwslt_de_en": admin_transformer_iwslt_de_en,
    "admin_transformer_wmt_en_de": admin_transformer_wmt_en_de,
    "admin_transformer_wmt_en_de_18_18": admin_transformer_wmt_en_de_18_18,
    "admin_transformer_wmt_en_de_60_12": admin_transformer_wmt_en_de_60_12,
    "admin_transformer_wmt_en_de_big": admin_transformer_wmt_en_de_big,
}
register_architectures(AdminTransformerModel, ARCHITECTURES, admin=True)
