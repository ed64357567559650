"""The Admin residual: out = ω ⊙ shortcut + branch, with ω a per-dimension vector (arXiv:2004.08249)."""
from typing import Callable, Optional

import torch
from torch import nn


class ResidualScale(nn.Module):
    """Scales the shortcut of one residual sublayer by a learnable (or fixed) vector ω.

    ``recorder``, when set by the profiler, sees (self, shortcut, branch) before the sum and
    may fill ω in place; it is None in normal use and costs nothing then.
    """

    def __init__(self, dim: int, value: float = 1.0, learnable: bool = True):
        super().__init__()
        self.omega = nn.Parameter(torch.full((dim,), float(value)), requires_grad=learnable)
        self.recorder: Optional[Callable[["ResidualScale", torch.Tensor, torch.Tensor], None]] = None

    def forward(self, shortcut: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        # shortcut, branch: T x B x C; ω broadcasts over the last (channel) dimension
        if self.recorder is not None:
            self.recorder(self, shortcut, branch)
        return shortcut * self.omega + branch

    @torch.no_grad()
    def fill_(self, value: float) -> None:
        self.omega.fill_(value)

    def extra_repr(self) -> str:
        return f"dim={self.omega.numel()}, learnable={self.omega.requires_grad}"
