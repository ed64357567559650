"""Post-LN and Pre-LN baselines initialised as the Admin reference (fairseq 0.8), so that a comparison
with Admin changes one thing only (arXiv:2004.08249, section 5).

``refinit_transformer`` is fairseq's own ``transformer`` (Post-LN, or Pre-LN with
--encoder-normalize-before --decoder-normalize-before) whose projections start from the reference's
initialisation (see weight_init); ``--weight-init fairseq`` makes it stock fairseq 0.12 again.
"""
from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.models.transformer import (
    TransformerModel,
    base_architecture,
    transformer_iwslt_de_en,
    transformer_vaswani_wmt_en_de_big,
    transformer_wmt_en_de,
)

from .config import RefInitOptions, to_namespace
from .model import register_architectures
from .weight_init import DEFAULT_WEIGHT_INIT, initialize_weights


class ReferenceInitTransformerModel(TransformerModel):
    """fairseq's Transformer (Post-LN or Pre-LN) with the Admin reference's initial weights."""

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        gen_parser_from_dataclass(parser, RefInitOptions(), delete_default=True)

    @classmethod
    def build_model(cls, args, task):
        args = to_namespace(args)
        cls.architecture(args)
        model = super().build_model(args, task)
        initialize_weights(model, args.weight_init)
        return model


# architectures: fairseq's own shapes; each registered as a model with its dataclass config (see model.py)
def refinit_base_architecture(args):
    args.weight_init = getattr(args, "weight_init", None) or DEFAULT_WEIGHT_INIT
    base_architecture(args)


def refinit_transformer_iwslt_de_en(args):
    transformer_iwslt_de_en(args)
    refinit_base_architecture(args)


def refinit_transformer_wmt_en_de(args):
    transformer_wmt_en_de(args)
    refinit_base_architecture(args)


def refinit_transformer_wmt_en_de_big(args):
    transformer_vaswani_wmt_en_de_big(args)
    refinit_base_architecture(args)


register_architectures(ReferenceInitTransformerModel, {
    "refinit_transformer": refinit_base_architecture,
    "refinit_transformer_iwslt_de_en": refinit_transformer_iwslt_de_en,
    "refinit_transformer_wmt_en_de": refinit_transformer_wmt_en_de,
    "refinit_transformer_wmt_en_de_big": refinit_transformer_wmt_en_de_big,
}, admin=False)
