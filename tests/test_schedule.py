"""The learning-rate schedule of the correspondence stages (lightning_modules/schedule.py)."""
from __future__ import annotations

import pytest
import torch
from pytorch_lightning.callbacks import Timer

from lightning_modules.schedule import budgeted_multistep, elapsed_share


class _Trainer:
    """What the schedule reads of a trainer: its callbacks, one of them the wall-clock Timer."""

    world_size = 1

    def __init__(self, elapsed: float | None, duration: float = 100.0):
        timer = Timer(duration={"seconds": duration})
        timer.time_elapsed = lambda stage="train": self.elapsed
        timer.time_remaining = lambda stage="train": duration - self.elapsed
        self.callbacks = [timer] if elapsed is not None else []
        self.elapsed = elapsed or 0.0


def _lrs(sched, epochs: int, trainer: _Trainer | None = None, elapsed_at: dict | None = None) -> list[float]:
    out = []
    for e in range(epochs):
        if trainer is not None and elapsed_at and e in elapsed_at:
            trainer.elapsed = elapsed_at[e]
        out.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    return out


def _opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_without_time_limit_it_is_multistep():
    ref = torch.optim.lr_scheduler.MultiStepLR(_opt(), milestones=[3, 5], gamma=0.1)
    ours = budgeted_multistep(_opt(), lambda: None, [3, 5], 0.1, time_milestones=[0.5])
    assert _lrs(ours, 7) == pytest.approx(_lrs(ref, 7))


def test_time_milestone_drops_before_the_epoch_milestone_and_stays():
    tr = _Trainer(elapsed=0.0)
    sched = budgeted_multistep(_opt(), lambda: tr, [8], 0.1, time_milestones=[0.75])
    # 80 of 100 s are gone after epoch 2 (a slow machine): the drop comes at epoch 3, not 8, and only once
    lrs = _lrs(sched, 10, tr, elapsed_at={0: 10.0, 1: 40.0, 2: 80.0, 5: 95.0})
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_epoch_milestone_first_on_a_fast_machine():
    tr = _Trainer(elapsed=0.0)
    sched = budgeted_multistep(_opt(), lambda: tr, [2, 4], 0.5, time_milestones=[0.75, 0.9])
    lrs = _lrs(sched, 6, tr, elapsed_at={0: 1.0, 3: 80.0})  # epoch 2 drops by count, 0.75 s adds nothing
    assert lrs == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])


def test_elapsed_share_and_bad_milestones():
    assert elapsed_share(None) is None
    assert elapsed_share(_Trainer(elapsed=None)) is None
    assert elapsed_share(_Trainer(elapsed=25.0)) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="time_milestones"):
        budgeted_multistep(_opt(), lambda: None, [1], 0.1, time_milestones=[75])


def test_ddp_ranks_use_rank_zeros_share():
    class _Strategy:
        def broadcast(self, obj, src=0):
            assert src == 0
            return 0.9  # rank 0 is further along than this rank

    tr = _Trainer(elapsed=10.0)
    tr.world_size, tr.strategy = 2, _Strategy()
    assert elapsed_share(tr) == pytest.approx(0.9)
    sched = budgeted_multistep(_opt(), lambda: tr, [50], 0.1, time_milestones=[0.75])
    sched.optimizer.step()
    sched.step()
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
