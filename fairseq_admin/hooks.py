"""Finding a model's Transformer layers, and observing their residual sublayers during a step.

Every fairseq Transformer layer (fairseq's own, the Admin layers, the other stabilisers' layers) adds
shortcut and branch through its public ``residual_connection(x, residual)`` hook, once per sublayer, in
forward order. ``ResidualObserver`` wraps that hook on chosen layer *instances* (an instance attribute;
the class and every other model are untouched) and calls an observer with the tensors the hook already
receives, adding no computation of its own. Observers nest: each one restores on exit exactly what it
found on entry, so a meter and a capture can watch the same step.
"""
from typing import Callable, Iterable, List, Optional, Tuple

from torch import nn


def unwrap(model: nn.Module, attribute: str) -> nn.Module:
    """The model under distributed / FSDP wrappers (``.module``) that has ``attribute``."""
    while hasattr(model, "module") and not hasattr(model, attribute):
        model = model.module
    return model


def transformer_layers(module: nn.Module, stack: Optional[str] = None) -> List[nn.Module]:
    """The Transformer layers of ``module`` in module order (= forward order within a stack).

    stack None: every encoder and decoder layer found under ``module`` (which may itself be a stack).
    stack "encoder" / "decoder": that stack's layers of the model ``module`` (wrappers unwrapped).
    """
    from fairseq.modules.transformer_layer import TransformerDecoderLayerBase, TransformerEncoderLayerBase
    if stack is None:
        kinds: Tuple[type, ...] = (TransformerEncoderLayerBase, TransformerDecoderLayerBase)
    else:
        kinds = (TransformerEncoderLayerBase,) if stack == "encoder" else (TransformerDecoderLayerBase,)
        module = getattr(unwrap(module, stack), stack)
    return [m for m in module.modules() if isinstance(m, kinds)]


#: observer(key, layer, x, residual, out): called after each sublayer's residual_connection
Observer = Callable[[object, nn.Module, object, object, object], None]


class ResidualObserver:
    """Context manager: while active, ``observer(key, layer, x, residual, out)`` sees every
    ``residual_connection`` call of the given ``(key, layer)`` pairs; the sum ``out`` is returned
    unchanged (an observer may register a gradient hook on it or retain its grad)."""

    def __init__(self, layers: Iterable[Tuple[object, nn.Module]], observer: Observer):
        self.layers = list(layers)
        self.observer = observer
        self._saved: List[Tuple[nn.Module, bool, object]] = []

    def __enter__(self):
        for key, layer in self.layers:
            had = "residual_connection" in layer.__dict__
            self._saved.append((layer, had, layer.__dict__.get("residual_connection")))
            inner = layer.residual_connection  # the class's bound method, or an outer observer's wrapper

            def residual_connection(x, residual, _inner=inner, _key=key, _layer=layer):
                out = _inner(x, residual)
                self.observer(_key, _layer, x, residual, out)
                return out

            layer.residual_connection = residual_connection
        return self

    def __exit__(self, *exc):
        for layer, had, previous in reversed(self._saved):
            if had:
                layer.residual_connection = previous
            else:
                layer.__dict__.pop("residual_connection", None)
        self._saved = []
        return False
