"""``inverse_sqrt_nowarmup``: T-Fixup's learning-rate schedule (layer6ai-labs/T-Fixup,
fairseq/optim/lr_scheduler/inverse_sqrt_nowarmup_schedule.py), which fairseq itself does not have.

    lr(update) = lr · sqrt(P / (P + update)),   P = --decay-period (default 4000)

It starts at --lr (no warmup) and halves the rate's square after P updates; with P equal to another
run's --warmup-updates it follows that run's inverse_sqrt decay, without the warmup.
"""
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import List

from fairseq.dataclass import FairseqDataclass
from fairseq.optim.lr_scheduler import FairseqLRScheduler, register_lr_scheduler
from omegaconf import II

from .errors import AdminError


@dataclass
class InverseSqrtNoWarmupConfig(FairseqDataclass):
    decay_period: int = field(default=4000, metadata={
        "help": "P in lr * sqrt(P / (P + update)): after P updates the learning rate is lr / sqrt(2)"})
    # accepted so that a recipe written for inverse_sqrt can switch to this schedule by its name alone
    warmup_updates: int = field(default=0, metadata={
        "help": "must be 0: this schedule has no warmup (accepted so that a recipe's inverse_sqrt settings "
                "can stay beside it)"})
    warmup_init_lr: float = field(default=-1, metadata={"help": "unused: this schedule has no warmup"})
    lr: List[float] = II("optimization.lr")


@register_lr_scheduler("inverse_sqrt_nowarmup", dataclass=InverseSqrtNoWarmupConfig)
class InverseSqrtNoWarmupSchedule(FairseqLRScheduler):
    """lr · sqrt(P / (P + update)), from the first update on (T-Fixup's schedule)."""

    def __init__(self, cfg: InverseSqrtNoWarmupConfig, optimizer):
        super().__init__(cfg, optimizer)
        lrs = list(cfg.lr) if isinstance(cfg.lr, Collection) else [cfg.lr]
        if len(lrs) != 1:
            raise AdminError("--lr-scheduler inverse_sqrt_nowarmup takes one --lr, not a list: "
                             "use --lr-scheduler fixed for a schedule of rates")
        if cfg.warmup_updates != 0:
            raise AdminError(f"--warmup-updates {cfg.warmup_updates}: inverse_sqrt_nowarmup has no warmup; set it "
                             "to 0 (or use --lr-scheduler inverse_sqrt for a warmup)")
        if cfg.decay_period < 1:
            raise AdminError(f"--decay-period {cfg.decay_period}: it must be at least 1 (default 4000)")
        self.init_lr = float(lrs[0])
        self.decay_period = cfg.decay_period
        self.lr = self.init_lr
        self.optimizer.set_lr(self.lr)

    def step(self, epoch, val_loss=None):
        super().step(epoch, val_loss)
        return self.optimizer.get_lr()  # the rate follows updates, not epochs

    def step_update(self, num_updates):
        self.lr = self.init_lr * (self.decay_period / (self.decay_period + num_updates)) ** 0.5
        self.optimizer.set_lr(self.lr)
        return self.lr
