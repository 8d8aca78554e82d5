"""Step learning-rate schedule that also fits a wall-clock budget.

``budgeted_multistep(opt, trainer_getter, milestones, gamma, time_milestones)``: lr = base lr x gamma^k after
the k-th drop, and drop k happens at epoch ``milestones[k]`` or, when the run has a wall-clock limit
(``trainer.max_time``, Lightning's ``Timer``), once the share ``time_milestones[k]`` of that limit has
passed, whichever comes first. Without a time limit, or with ``time_milestones`` empty, it is exactly
``MultiStepLR``. A run capped by ``max_time`` on a slower machine than its preset was sized for then
still gets its low-lr phase before the cap ends it, instead of being cut before the drop.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def elapsed_share(trainer) -> float | None:
    """Share of the trainer's wall-clock limit used so far (None without a trainer or a limit); under DDP
    rank 0's share, so that no rank steps with another learning rate than the others."""
    from pytorch_lightning.callbacks import Timer

    if trainer is None:
        return None
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is None:
        return None
    elapsed, remaining = timer.time_elapsed("train"), timer.time_remaining("train")
    if remaining is None or elapsed + remaining <= 0:
        return None
    share = elapsed / (elapsed + remaining)
    if getattr(trainer, "world_size", 1) > 1:  # rank 0 decides, as for the Timer's stop: all ranks drop together
        share = trainer.strategy.broadcast(share, src=0)
    return share


def budgeted_multistep(opt: torch.optim.Optimizer, trainer_getter: Callable[[], object],
                       milestones: Sequence[int], gamma: float,
                       time_milestones: Sequence[float] = ()) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule described in the module docstring, stepped once per epoch. ``trainer_getter`` returns
    the running trainer (or None); the lambda is a plain function, so checkpoints store no reference to it
    and a resumed run recomputes the drops from the epoch and the restored timer."""
    ms = sorted(int(m) for m in milestones)
    ts = sorted(float(t) for t in time_milestones)
    if any(not 0.0 < t <= 1.0 for t in ts):
        raise ValueError(f"optim.time_milestones must be shares of trainer.max_time in (0, 1], got {ts}")
    state = {"time_drops": 0}

    def factor(epoch: int) -> float:
        share = elapsed_share(trainer_getter()) if ts else None
        if share is not None:  # a passed time milestone stays passed
            state["time_drops"] = max(state["time_drops"], sum(share >= t for t in ts))
        drops = max(sum(epoch >= m for m in ms), state["time_drops"])
        return float(gamma) ** drops

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
