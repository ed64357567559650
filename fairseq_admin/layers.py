"""Admin encoder/decoder layers: fairseq's Post-LN layers with ω on every shortcut (arXiv:2004.08249).

The layers override one public hook of fairseq, ``residual_connection(x, residual)``, which every
sublayer calls once in forward order; each call takes the next ω of the layer.
"""
from typing import List

from fairseq.distributed import fsdp_wrap
from fairseq.models.transformer import TransformerDecoderBase, TransformerEncoderBase
from fairseq.modules.checkpoint_activations import checkpoint_wrapper
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase, TransformerEncoderLayerBase

from .errors import AdminError
from .residual import ResidualScale

# attributes that some fairseq versions read to take an eval-mode fused encoder-layer kernel
# (torch._transformer_encoder_layer_fwd) that never calls residual_connection
_FAST_PATH_FLAGS = ("BT_version", "can_use_fastpath", "load_to_BT")


class _AdminLayerMixin:
    """Hands out the layer's ω modules in forward order, one per residual_connection call."""

    def _init_residual_scales(self, names: List[str]) -> None:
        for name in names:
            setattr(self, name, ResidualScale(self.embed_dim))
        self._scale_names = names
        self._pending: List[ResidualScale] = []
        for flag in _FAST_PATH_FLAGS:  # never let a fused kernel skip ω
            if hasattr(self, flag):
                setattr(self, flag, False)

    def residual_scales(self) -> List[ResidualScale]:
        """The layer's ω modules, in forward order."""
        return [getattr(self, name) for name in self._scale_names]

    def residual_connection(self, x, residual):
        return self._pending.pop(0)(residual, x)

    def _run(self, scales: List[ResidualScale], forward, *args, **kwargs):
        self._pending = list(scales)
        out = forward(*args, **kwargs)
        if self._pending:
            left = len(self._pending)
            self._pending = []
            raise AdminError(
                f"{type(self).__name__}: {left} residual sublayer(s) never reached residual_connection; "
                "this fairseq version bypassed the Admin shortcut (fast path?): please report it"
            )
        return out


class AdminEncoderLayer(_AdminLayerMixin, TransformerEncoderLayerBase):
    """Post-LN encoder layer: x = LN(ω ⊙ x + SelfAttn(x)); x = LN(ω ⊙ x + FFN(x))."""

    def __init__(self, cfg, return_fc=False):
        super().__init__(cfg, return_fc=return_fc)
        self._init_residual_scales(["self_attn_omega", "ffn_omega"])

    def forward(self, x, encoder_padding_mask, attn_mask=None):
        return self._run(self.residual_scales(), super().forward, x, encoder_padding_mask, attn_mask)


class AdminDecoderLayer(_AdminLayerMixin, TransformerDecoderLayerBase):
    """Post-LN decoder layer with ω on the self-attention, cross-attention and FFN shortcuts."""

    def __init__(self, cfg, no_encoder_attn=False, add_bias_kv=False, add_zero_attn=False):
        super().__init__(cfg, no_encoder_attn, add_bias_kv, add_zero_attn)
        names = ["self_attn_omega", "ffn_omega"]
        if self.encoder_attn is not None:
            names.insert(1, "encoder_attn_omega")
        self._init_residual_scales(names)

    def forward(self, x, encoder_out=None, *args, **kwargs):
        scales = self.residual_scales()
        if self.encoder_attn is not None and encoder_out is None:
            scales = [self.self_attn_omega, self.ffn_omega]  # fairseq skips cross-attention then
        return self._run(scales, super().forward, x, encoder_out, *args, **kwargs)


def _wrap(layer, cfg):
    # the same activation-checkpoint / FSDP wrapping as fairseq's build_*_layer, so that
    # --checkpoint-activations and FSDP keep working with Admin layers
    checkpoint = cfg.checkpoint_activations
    if checkpoint:
        layer = checkpoint_wrapper(layer, offload_to_cpu=cfg.offload_activations)
    return fsdp_wrap(layer, min_num_params=cfg.min_params_to_wrap if not checkpoint else 0)


class AdminTransformerEncoder(TransformerEncoderBase):
    """fairseq's transformer encoder built from AdminEncoderLayer."""

    def build_encoder_layer(self, cfg):
        return _wrap(AdminEncoderLayer(cfg, return_fc=self.return_fc), cfg)


class AdminTransformerDecoder(TransformerDecoderBase):
    """fairseq's transformer decoder built from AdminDecoderLayer."""

    def build_decoder_layer(self, cfg, no_encoder_attn=False):
        return _wrap(AdminDecoderLayer(cfg, no_encoder_attn), cfg)
