"""RAdam (Liu et al., arXiv:1908.03265) as a fairseq optimizer, ``--optimizer radam``, as the Admin
reference recipes use it (arXiv:2004.08249, section 5 of the spec).

Behaviour of the reference, kept here: while the length of the approximated SMA ρ_t is below 5
(the first ~5 steps with β2 = 0.98) the moments are updated but the parameters are NOT (the step is
skipped), and weight decay is decoupled (p -= lr·wd·p, applied with each real step).
torch.optim.RAdam differs in that early phase: it applies an un-adapted, bias-corrected momentum
step (SGD with momentum) instead of skipping, and couples weight decay unless
decoupled_weight_decay=True.
"""
import ast
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, List

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.optim import FairseqOptimizer, register_optimizer
from omegaconf import II, OmegaConf


class RAdam(torch.optim.Optimizer):
    """Rectified Adam that skips steps while the variance estimate is intractable (ρ_t < 5)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @property
    def supports_memory_efficient_fp16(self):
        return True

    @property
    def supports_flat_params(self):
        return True

    @staticmethod
    def rectification(step: int, beta2: float) -> float:
        """The factor r_t of the adaptive step, or 0.0 while ρ_t < 5 (the step is skipped)."""
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        beta2_t = beta2 ** step
        rho_t = rho_inf - 2.0 * step * beta2_t / (1.0 - beta2_t)
        if rho_t < 5:
            return 0.0
        return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()  # fp32 math also for fp16 params (memory-efficient fp16)
                p32 = p.float() if p.dtype in (torch.float16, torch.bfloat16) else p
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p32)
                    state["exp_avg_sq"] = torch.zeros_like(p32)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                r = self.rectification(t, beta2)
                if r == 0.0:
                    continue  # ρ_t < 5: moments only, no parameter change
                if group["weight_decay"]:
                    p32.mul_(1 - group["lr"] * group["weight_decay"])
                step_size = group["lr"] * r * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                p32.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size)
                if p32 is not p:
                    p.copy_(p32)
        return loss


@dataclass
class FairseqRAdamConfig(FairseqDataclass):
    adam_betas: Any = field(default=(0.9, 0.999), metadata={"help": "betas for RAdam"})
    adam_eps: float = field(default=1e-8, metadata={"help": "epsilon for RAdam"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay"})
    lr: List[float] = II("optimization.lr")


@register_optimizer("radam", dataclass=FairseqRAdamConfig)
class FairseqRAdam(FairseqOptimizer):
    """``--optimizer radam``: the RAdam of the Admin reference recipes (see the module docstring)."""

    def __init__(self, cfg: FairseqRAdamConfig, params):
        super().__init__(cfg)
        self._optimizer = RAdam(params, **self.optimizer_config)

    @property
    def optimizer_config(self):
        lr = self.cfg.lr[0] if isinstance(self.cfg.lr, Collection) else self.cfg.lr
        betas = self.cfg.adam_betas  # "(0.9,0.98)" from the command line, or a list from a config
        if isinstance(betas, str):
            betas = ast.literal_eval(betas)
        elif OmegaConf.is_config(betas):
            betas = OmegaConf.to_container(betas)
        return {"lr": lr, "betas": tuple(betas), "eps": self.cfg.adam_eps,
                "weight_decay": self.cfg.weight_decay}
