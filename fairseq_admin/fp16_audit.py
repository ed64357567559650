"""An fp16 audit of an fp32 run: what fairseq's ``--fp16`` would have met, update by update.

fairseq's fp16 training (FP16Optimizer) runs forward and backward in half precision on the loss times
a dynamic scale S, and skips an update (S halved) when any gradient overflows; after ``scale_window``
clean updates S doubles. On a machine without fp16 (a CPU), ``--admin-fp16-audit`` runs the same
model in fp32 and, at every training step, compares what fp16 would have held against its limits:

- every parameter gradient times S against fp16's largest value (65,504): overflow, which parameter;
- each residual sublayer's output (the tensor before Post-LN's LayerNorm) against 65,504, and its
  gradient times S against it (activation overflow in the forward or the backward);
- the fraction of non-zero parameter gradient entries whose |g·S| falls below fp16's smallest
  subnormal (2^-24): gradients fp16 would flush to zero (per stack and overall).

The simulated S follows fairseq's own DynamicLossScaler with this run's settings (--fp16-init-scale,
--fp16-scale-window or fairseq's default 2^14 / (GPUs · update_freq), --fp16-scale-tolerance,
--threshold-loss-scale, --min-loss-scale): an overflow halves it, a window of clean updates doubles it.
What it does not model: the fp32 run does not skip the updates fp16 would have skipped, and fp16's
rounding of weights and activations is not applied, so the trajectory is the one the fp32 weights
imply, exact only up to the first overflow. Gradients are read after each step's backward, as fp16
accumulates them over --update-freq micro-batches; the scale changes once per update.

A resumed run continues the simulation (the scaler's state is saved in fairseq's checkpoints). Written
(rank 0) to ``fp16_audit.tsv`` in --save-dir, one line per update, and logged as
``fp16_scale``, ``fp16_overflow``, ``fp16_underflow`` in fairseq's train log and tensorboard.
"""
import math
import os
from typing import Dict, Optional

import torch
from fairseq import metrics
from fairseq.optim.dynamic_loss_scaler import DynamicLossScaler

from .hooks import ResidualObserver, transformer_layers

FP16_MAX = 65504.0
FP16_MIN_SUBNORMAL = 2.0 ** -24
COLUMNS = ("update", "loss_scale", "overflow", "cause", "max_grad_x_scale", "max_grad_param", "max_activation",
           "max_activation_grad_x_scale", "underflow", "underflow_encoder", "underflow_decoder")


class Fp16Audit:
    """One per training run; ``step`` wraps one train_step, ``end_update`` once per optimizer update."""

    def __init__(self, path: Optional[str], init_scale: float, scale_window: int, tolerance: float,
                 threshold: Optional[float], min_loss_scale: float):
        self.scaler = DynamicLossScaler(init_scale=init_scale, scale_window=scale_window, tolerance=tolerance,
                                        threshold=threshold, min_loss_scale=min_loss_scale)
        self.path = path
        self.stopped = None  # the update at which fairseq would have stopped (minimum loss scale)
        self._reset()
        if path is not None and not os.path.exists(path):
            with open(path, "w", encoding="utf-8") as f:
                f.write("\t".join(COLUMNS) + "\n")

    def _reset(self):
        self.max_grad, self.max_grad_param = 0.0, "-"
        self.max_act, self.max_act_grad = 0.0, 0.0
        self.tiny = {"encoder": 0, "decoder": 0}
        self.nonzero = {"encoder": 0, "decoder": 0}

    # --- resuming: the simulated scaler travels in fairseq's checkpoint (the task's checkpoint dict) ---
    _STATE = ("loss_scale", "_iter", "_last_overflow_iter", "_last_rescale_iter", "_overflows_since_rescale")

    def state_dict(self) -> Dict[str, float]:
        state = {k: getattr(self.scaler, k) for k in self._STATE}
        state["stopped"] = self.stopped
        return state

    def load_state_dict(self, state: Dict[str, float], update: int) -> None:
        """Continue the simulation of a resumed run from its checkpoint (update ``update``); rows the
        interrupted run wrote after that checkpoint are dropped from the file, as fairseq redoes them."""
        for k in self._STATE:
            setattr(self.scaler, k, state[k])
        self.stopped = state.get("stopped")
        self.drop_after(update)

    def drop_after(self, update: int) -> None:
        """Drop the file's rows of updates after ``update``, the last one this run starts from: those of an
        interrupted run after its checkpoint, or all of them when a run starts again from update 0 (its
        checkpoints deleted) in a folder that still has an audit file."""
        if self.path is not None and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                lines = f.readlines()
            kept = lines[:1] + [l for l in lines[1:] if l.split("\t", 1)[0].isdigit() and int(l.split("\t", 1)[0]) <= update]
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(kept)
            os.replace(tmp, self.path)

    # --- one train_step (forward + backward) ----------------------------------------------------
    def wrap(self, model):
        """Context manager: record each residual sublayer's output and its gradient during the step."""
        layers = [(None, layer) for stack in ("encoder", "decoder") for layer in transformer_layers(model, stack)]
        return ResidualObserver(layers, self._observe)

    def _observe(self, key, layer, x, residual, out) -> None:
        with torch.no_grad():
            self.max_act = max(self.max_act, float(out.detach().abs().max()))
        if out.requires_grad:
            out.register_hook(self._record_act_grad)

    def _record_act_grad(self, grad):
        self.max_act_grad = max(self.max_act_grad, float(grad.detach().abs().max()))

    @torch.no_grad()
    def after_backward(self, model) -> None:
        """Read the (accumulated) parameter gradients of this step."""
        scale = self.scaler.loss_scale
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            g = p.grad.detach().abs()
            top = float(g.max()) if g.numel() else 0.0
            if top > self.max_grad:
                self.max_grad, self.max_grad_param = top, name
            stack = "decoder" if "decoder" in name.split(".")[:2] else "encoder"
            nonzero = g > 0
            self.nonzero[stack] += int(nonzero.sum())
            self.tiny[stack] += int((nonzero & (g * scale < FP16_MIN_SUBNORMAL)).sum())

    # --- once per update -------------------------------------------------------------------------
    def end_update(self, update: int) -> Dict[str, float]:
        scale = self.scaler.loss_scale
        grad_x, act_grad_x = self.max_grad * scale, self.max_act_grad * scale
        causes = []
        if grad_x > FP16_MAX or not math.isfinite(grad_x):
            causes.append(f"grad:{self.max_grad_param}")
        if self.max_act > FP16_MAX or not math.isfinite(self.max_act):
            causes.append("activation")
        if act_grad_x > FP16_MAX or not math.isfinite(act_grad_x):
            causes.append("activation_grad")
        overflow = bool(causes)
        total_nonzero = sum(self.nonzero.values())
        frac = lambda k: (self.tiny[k] / self.nonzero[k]) if self.nonzero[k] else 0.0  # noqa: E731
        row = {
            "update": update, "loss_scale": scale, "overflow": int(overflow), "cause": ",".join(causes) or "-",
            "max_grad_x_scale": grad_x, "max_grad_param": self.max_grad_param, "max_activation": self.max_act,
            "max_activation_grad_x_scale": act_grad_x,
            "underflow": (sum(self.tiny.values()) / total_nonzero) if total_nonzero else 0.0,
            "underflow_encoder": frac("encoder"), "underflow_decoder": frac("decoder"),
        }
        if self.stopped is None:
            try:
                if overflow:
                    self.scaler.check_overflow(float("inf"))
                else:
                    self.scaler.update()
            except OverflowError:
                pass
            except FloatingPointError:  # fairseq would stop training here
                self.stopped = update
        if self.stopped is not None:
            row["cause"] += f" (fairseq would have stopped at update {self.stopped}: minimum loss scale)"
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\t".join(_fmt(row[c]) for c in COLUMNS) + "\n")
        metrics.log_scalar("fp16_scale", scale, weight=0, round=4)
        metrics.log_scalar("fp16_overflow", float(overflow), round=3)
        metrics.log_scalar("fp16_underflow", row["underflow"], round=6)
        self._reset()
        return row


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
