"""Training throughput of any stage, logged as ``perf/samples_per_s`` once per epoch.

The figure is end to end: the wall time between the ends of consecutive training batches (data loading,
forward, backward and optimiser step), summed over the epoch, so a starved GPU shows up as a low figure.
The intervals telescope, so on CUDA only their end points need the device synchronised (the epoch start,
the end of the warm-up and the epoch's last batch), not every step: the hot path keeps running ahead.
The first ``warmup`` batches of the run (worker start-up, cuDNN autotuning, first allocations) are not
counted. ``perf/max_memory_gib`` is the peak memory allocated by torch on a CUDA device.
"""
from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch


def batch_size_of(batch: Any) -> int:
    """The leading dimension of the first tensor in a (nested) batch; 0 when it holds none."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            n = batch_size_of(item)
            if n:
                return n
    return 0


class Throughput(pl.Callback):
    def __init__(self, warmup: int = 3):
        self.warmup = int(warmup)
        self._seen = 0
        self._last: float | None = None
        self._samples = 0
        self._seconds = 0.0

    @staticmethod
    def _now(pl_module: pl.LightningModule, sync: bool = True) -> float:
        if sync and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._samples, self._seconds = 0, 0.0
        self._last = self._now(pl_module)  # the first batch of an epoch includes its loading, as any other

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        self._seen += 1
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        now = self._now(pl_module, sync=self._seen == self.warmup or last_of_epoch)
        if self._seen > self.warmup and self._last is not None:
            self._samples += batch_size_of(batch)
            self._seconds += now - self._last
        self._last = now

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._seconds <= 0 or not self._samples:
            return
        # per process: with DDP every rank reports its own share (multiply by the world size for the job)
        pl_module.log("perf/samples_per_s", self._samples / self._seconds, rank_zero_only=True)
        if pl_module.device.type == "cuda":
            pl_module.log("perf/max_memory_gib", torch.cuda.max_memory_allocated(pl_module.device) / 2 ** 30,
                          rank_zero_only=True)
