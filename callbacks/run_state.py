"""What keeps a training run resumable, however it ends (used by ``experiments.run`` for every stage).

- :class:`DataPosition` stores the training position (epoch, batches done in it) in every checkpoint and
  hands it to the DataModule on resume, whose sampler then continues the interrupted epoch with exactly
  the batches that were not trained yet (``datamodules.sampling``).
- :class:`RunGuard` writes ``last.ckpt`` when the run stops by an exception, Ctrl-C (SIGINT), SIGTERM, or
  SLURM's SIGUSR1 (sent before a preemption; ``experiments.run`` then requeues the job), and at the end
  of training (the signals stop the run at a batch boundary, after the batch's metrics are logged);
  repoints ``<stage>/latest`` once the first optimisation step is done; flushes the CSV metrics whenever
  a checkpoint is written, so the rows of everything a checkpoint holds are on disk; counts unreadable
  training images skipped by the datasets (``data/skipped`` per epoch, one warning per file). It
  records how the run ended in ``ending``.
- :class:`HistoryCSVLogger` keeps ``metrics.csv`` when a run is resumed into its folder.
- :class:`AtomicCheckpointIO` writes checkpoints to a temporary file beside the target and renames it, so a
  kill while saving never leaves a truncated ``last.ckpt``.
- :func:`newest_checkpoint` picks what a run folder resumes from: the checkpoint with the most training
  done, whichever kind it is (``checkpoints/last.ckpt``, ``checkpoints/best-*.ckpt``, or Lightning's
  ``hpc_ckpt_N.ckpt`` written on SLURM's SIGUSR1 into the run folder); :func:`stale_checkpoints` lists the
  files of earlier attempts that the resumed state no longer tracks (removed on resume, so they neither
  pile up past ``save_top_k`` nor are picked later instead of a newer state).
"""
from __future__ import annotations

import csv
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from lightning_fabric.loggers.logger import rank_zero_experiment
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter as _CSVWriter

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into ``.<name>.tmp-<pid>`` beside the target, then ``os.replace``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


#: Lightning's checkpoint on SLURM's SIGUSR1 (``<default_root_dir>/hpc_ckpt_<N>.ckpt``)
HPC_CKPT = re.compile(r"hpc_ckpt_(\d+)\.ckpt")
#: the monitored ModelCheckpoint's files (``experiments.run``), with Lightning's ``-vN`` version suffix
BEST_CKPT = re.compile(r"best-.*\.ckpt")


def _ckpt_files(run_dir: Path) -> list[Path]:
    """Every checkpoint a run writes: ``checkpoints/*.ckpt`` and ``hpc_ckpt_*.ckpt`` in the run folder."""
    files = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    files += sorted(p for p in run_dir.glob("hpc_ckpt_*.ckpt") if HPC_CKPT.fullmatch(p.name))
    return [p for p in files if p.is_file()]


def checkpoint_position(path: Path) -> tuple[int, int, int] | None:
    """(global step, epoch, batches of that epoch done) saved in a checkpoint (the position of
    :class:`DataPosition`: after an epoch's end it is the next epoch, 0 batches); None for a file that
    cannot be read (empty, truncated: e.g. a kill while Lightning wrote an ``hpc_ckpt``). Memory-mapped:
    only the small entries are read."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        pos = (ckpt.get("callbacks") or {}).get("DataPosition") or {}
        return (int(ckpt["global_step"]), int(pos.get("epoch", ckpt.get("epoch") or 0)),
                int(pos.get("batches") or 0))
    except Exception as e:  # any unreadable file is simply not a candidate
        log.warning("ignoring the unreadable checkpoint %s (%s)", path, type(e).__name__)
        return None


def _kind_rank(path: Path) -> tuple[int, int]:
    """Tie-break between checkpoints of the same training position: last.ckpt (written after everything
    else at that step, e.g. after the epoch's end) first, then the newest hpc_ckpt, then the rest."""
    if path.name == "last.ckpt":
        return 2, 0
    m = HPC_CKPT.fullmatch(path.name)
    return (1, int(m.group(1))) if m else (0, 0)


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint of ``run_dir`` with the most training done (global step, then epoch, then batches
    of the epoch; ties: see :func:`_kind_rank`); None when the folder has no readable checkpoint."""
    best: tuple | None = None
    for path in _ckpt_files(Path(run_dir)):
        pos = checkpoint_position(path)
        if pos is not None:
            key = (*pos, *_kind_rank(path))
            if best is None or key > best[0]:
                best = (key, path)
    return best[1] if best else None


def stale_checkpoints(run_dir: str | Path, resume_from: str | Path) -> list[Path]:
    """Files of ``run_dir`` a run resumed from ``resume_from`` would leave behind for good: every
    ``hpc_ckpt_*.ckpt`` but the one resumed from that holds no newer state (resuming from it again would
    roll the run back; an unreadable one too), and every ``best-*.ckpt`` that the resumed state's ModelCheckpoint does not track (an
    earlier attempt's, which that callback would never delete). Files of other names are never listed."""
    run_dir, resume_from = Path(run_dir), Path(resume_from).resolve()
    try:
        ckpt = torch.load(resume_from, map_location="cpu", weights_only=False, mmap=True)
    except Exception:
        return []
    tracked: set[Path] = set()
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and isinstance(state, dict):
            tracked.update(Path(p).resolve() for p in (state.get("best_k_models") or {}))
            for k in ("best_model_path", "last_model_path", "kth_best_model_path"):
                if state.get(k):
                    tracked.add(Path(state[k]).resolve())
    here = checkpoint_position(resume_from)
    out = []
    for path in _ckpt_files(run_dir):
        if path.resolve() == resume_from:
            continue
        if HPC_CKPT.fullmatch(path.name):
            pos = checkpoint_position(path)
            if pos is None or here is None or pos <= here:     # never a newer state than the one resumed
                out.append(path)
        elif BEST_CKPT.fullmatch(path.name) and path.resolve() not in tracked:
            out.append(path)
    return out


class DataPosition(pl.Callback):
    """The training position (epoch, batches of it done), saved in checkpoints and restored into the
    DataModule's ``resume_position`` (see ``datamodules.sampling.train_sampler``).

    A batch counts as done at ``on_train_batch_end`` (its optimiser step has run; Lightning's checkpoint
    callbacks, which run after this one, then save it); the end of a training epoch moves the position to
    the next epoch."""

    def __init__(self) -> None:
        self.epoch = 0
        self.batches = 0
        self._trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch, self.batches = int(trainer.current_epoch), 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch, self.batches = int(trainer.current_epoch) + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.epoch, self.batches = int(state_dict["epoch"]), int(state_dict["batches"])
        self._hand_over()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._hand_over()

    def _hand_over(self) -> None:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "resume_position") and (self.epoch or self.batches):
            dm.resume_position = (self.epoch, self.batches)


class RunGuard(pl.Callback):
    """See the module docstring. ``last_path``: the run's ``checkpoints/last.ckpt``; ``on_first_step``:
    called once on rank 0 after the first optimisation step (``experiments.run`` points ``latest``).

    SIGINT (Ctrl-C) and SIGUSR1 do not interrupt a step: they take Lightning's SIGTERM path, which lets the
    current batch finish (and be logged), then raises ``SIGTERMException`` on every rank at the same batch
    boundary; ``last.ckpt`` is written there. A second Ctrl-C stops at once (KeyboardInterrupt;
    ``last.ckpt`` is still written, from the state at that moment)."""

    SIGNALS = ("SIGINT", "SIGUSR1")

    def __init__(self, last_path: str | Path, on_first_step: Callable[[], None] | None = None) -> None:
        self.last_path = Path(last_path)
        self.on_first_step = on_first_step
        # sigint | sigusr1 | sigterm | max_steps | exception (set when it happens)
        self.ending: str | None = None
        self.error: BaseException | None = None
        self.batches_this_fit = 0
        self._first_step_done = False
        self._requested: str | None = None
        self._saved_at_batch = -1
        self._old_handlers: dict[int, Any] = {}
        self._skipped_seen: set[str] = set()
        self._trainer: pl.Trainer | None = None

    # -- signals --------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            if hasattr(signal, name):
                sig = getattr(signal, name)
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old_handlers = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name.lower()
        if name == "sigint" and self._requested == "sigint":
            raise KeyboardInterrupt      # the second Ctrl-C: stop now
        self._requested = self._requested or name
        trainer = self._trainer
        if trainer is not None:
            # Lightning's graceful stop: SIGTERMException after this batch (broadcast to every rank by rank 0)
            trainer._signal_connector.received_sigterm = True
            if trainer.is_global_zero and name == "sigint":
                print("\n[corrtrack] Ctrl-C: stopping after this training step and saving "
                      "checkpoints/last.ckpt (press Ctrl-C again to stop at once)", file=sys.stderr,
                      flush=True)

    # -- per batch ------------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        self.batches_this_fit += 1
        skipped = batch.get("skipped", []) if isinstance(batch, dict) else []
        for path in skipped:
            if path not in self._skipped_seen:
                self._skipped_seen.add(path)
                log.warning("skipped an unreadable training image (missing or corrupt): %s", path)
        pl_module.log("data/skipped", float(len(skipped)), on_step=False, on_epoch=True, reduce_fx="sum",
                      sync_dist=trainer.world_size > 1, batch_size=1)
        if not self._first_step_done and trainer.global_step >= 1:
            self._first_step_done = True
            if trainer.is_global_zero and self.on_first_step is not None:
                self.on_first_step()
        loop = trainer.fit_loop.epoch_loop
        if 0 < (loop.max_steps or -1) <= trainer.global_step and not loop._num_ready_batches_reached():
            # Lightning would end the epoch here and count it as finished, so a run resumed with a larger
            # max_steps would skip the rest of it: stop the way the signals do, part-way through the epoch
            self._requested = self._requested or "max_steps"
            loop.max_steps = -1
            trainer._signal_connector.received_sigterm = True

    # -- checkpoints ----------------------------------------------------------------------------------
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if trainer.is_global_zero:
            for lg in trainer.loggers:   # the metrics of everything this checkpoint holds reach the disk
                save = getattr(lg, "save", None)
                if callable(save):
                    save()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # max_steps / max_time / an early stop: make sure the newest state is in last.ckpt
        if self.batches_this_fit > 0:
            trainer.save_checkpoint(self.last_path)
            self._saved_at_batch = self.batches_this_fit

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if isinstance(exception, KeyboardInterrupt):
            self.ending = "sigint"
        elif isinstance(exception, SIGTERMException):
            self.ending = self._requested or "sigterm"
        else:
            self.ending, self.error = "exception", exception
        if self.batches_this_fit == 0 or self._saved_at_batch == self.batches_this_fit:
            return                      # nothing trained since the newest checkpoint of this fit
        if trainer.is_global_zero:
            # written by rank 0 alone, without the barrier of Trainer.save_checkpoint: the other ranks may
            # not be here (an exception on one rank) and must not be waited for
            try:
                ckpt = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
                trainer.strategy.checkpoint_io.save_checkpoint(ckpt, self.last_path)
                self._saved_at_batch = self.batches_this_fit
            except Exception as e:  # the original error matters more than this one
                log.warning("could not save %s after the interruption: %r", self.last_path, e)


class _HistoryWriter(_CSVWriter):
    """CSV metrics writer that keeps an existing ``metrics.csv`` (Lightning's deletes it): on the first
    save it drops the old rows from the resumed run's first logged step on (they were logged after the
    checkpoint the run resumed from and are logged again) and appends the new rows after the rest."""

    def __init__(self, log_dir: str) -> None:
        self._merged = False
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        pass   # keep metrics.csv: a resumed run continues its history

    def save(self) -> None:
        if not self.metrics:
            return
        if not self._merged and os.path.isfile(self.metrics_file_path):
            first = min(int(m["step"]) for m in self.metrics)
            with open(self.metrics_file_path, newline="") as f:
                reader = csv.DictReader(f)
                keys = list(reader.fieldnames or [])
                rows = [r for r in reader if _csv_step(r) < first]
            self.metrics_keys = sorted(set(keys) | set(self.metrics_keys))
            tmp = f"{self.metrics_file_path}.tmp-{os.getpid()}"
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp, self.metrics_file_path)
        self._merged = True
        super().save()


def _csv_step(row: dict) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class HistoryCSVLogger(CSVLogger):
    """Lightning's CSVLogger, but a resumed run keeps (and continues) the run's ``metrics.csv``."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _HistoryWriter(log_dir=self.log_dir)
        return self._experiment
