"""Training order and augmentation randomness as functions of (seed, epoch, index), so a resumed run sees
exactly the data an uninterrupted one would have seen.

- :class:`EpochSampler`: the shuffle of epoch ``e`` is a permutation drawn from ``(seed, e)`` (torch's
  ``DistributedSampler``: sharded over the ranks, the same on every rank), and it yields ``(epoch, index)``
  pairs: the dataset draws each sample's augmentation from :func:`sample_rng` of them, never from a global
  random state. Lightning calls ``set_epoch`` at every epoch start and, since this is a
  ``DistributedSampler``, leaves it in place under DDP.
- :meth:`EpochSampler.start_at`: a run resumed part-way through an epoch skips the batches that were
  already trained; ``callbacks.run_state.DataPosition`` stores that position in the checkpoint.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from torch.utils.data import Dataset, DistributedSampler


def sample_rng(seed: int, epoch: int, index: int, tag: int = 0) -> np.random.Generator:
    """The random generator of training sample ``index`` in ``epoch`` (``tag`` separates datasets)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index), int(tag)])


def split_key(key: Any) -> tuple[int, int]:
    """``(epoch, index)`` of what a sampler yields: an ``(epoch, index)`` pair, or a plain index (epoch 0)."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return 0, int(key)


class EpochSampler(DistributedSampler):
    """Shuffled (or ordered) indices of ``dataset`` for one rank, as ``(epoch, index)`` pairs.

    The order of epoch ``e`` depends only on ``(seed, e)`` and the rank layout. ``start_at(epoch, n)``
    makes the next pass over that epoch begin after its first ``n`` samples of this rank (a resumed run);
    ``len`` stays the full epoch, as Lightning counts the batches of the epoch from its own progress.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, shuffle: bool = True, num_replicas: int = 1,
                 rank: int = 0, drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=int(seed),
                         drop_last=drop_last)
        self._start: tuple[int, int] | None = None

    def start_at(self, epoch: int, samples_done: int) -> None:
        """Resume: the next pass over ``epoch`` skips its first ``samples_done`` samples (of this rank)."""
        self.set_epoch(int(epoch))
        self._start = (int(epoch), int(samples_done))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())
        if self._start is not None and self._start[0] == self.epoch:
            indices = indices[self._start[1]:]
        self._start = None
        epoch = self.epoch
        return iter([(epoch, int(i)) for i in indices])


def train_sampler(datamodule: Any, dataset: Dataset, seed: int) -> EpochSampler:
    """The training sampler of a DataModule: its trainer's rank layout (one replica without a trainer),
    started where ``datamodule.resume_position`` = (epoch, batches done) says, if set."""
    trainer = getattr(datamodule, "trainer", None)
    world, rank = (int(trainer.world_size), int(trainer.global_rank)) if trainer is not None else (1, 0)
    sampler = EpochSampler(dataset, seed=seed, shuffle=True, num_replicas=world, rank=rank)
    pos = getattr(datamodule, "resume_position", None)
    if pos is not None:
        epoch, batches = pos
        sampler.start_at(epoch, batches * int(datamodule.cfg.batch_size))
        datamodule.resume_position = None     # once: a reloaded loader starts its epoch from the beginning
    return sampler
