"""Runs that never lose work: a run interrupted at step k (Ctrl-C, SIGTERM, SLURM's SIGUSR1, max_steps, an
exception, SIGKILL) and resumed with the command it printed reaches the metrics of an uninterrupted run,
step for step, and keeps its whole metrics history; run folders are never overwritten; ``latest`` moves
only to a run that trained. (The 2-process DDP version is in tests/test_ddp.py.)"""
from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from experiments.config import load_config
from experiments.run import RunEnded, main, train

ROOT = Path(__file__).resolve().parents[1]
# 3 epochs x 3 batches of 2 pairs, validation (1 batch) after every epoch, tiny nets: 9 steps
SMALL = ["model.width=0.125", "data.input_size=64", "data.val_max_images=4", "data.batch_size=2",
         "data.num_workers=0", "cpu_threads=1", "trainer.max_steps=-1", "trainer.max_epochs=3",
         "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
         "figures.every_n_validations=0"]


def rows(run: Path) -> list[tuple]:
    """(step, epoch, train/loss, val/loss, val/corr_pck) of every metrics.csv row that has one of them."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        out = []
        for r in csv.DictReader(f):
            vals = tuple(r.get(k) or None for k in ("train/loss", "val/loss", "val/corr_pck"))
            if any(vals):
                out.append((int(r["step"]), r.get("epoch"), *vals))
    return sorted(out, key=lambda t: (t[0], t[2] is None))


class StopAt(pl.Callback):
    """Interrupts the run the way a user or a scheduler does, after optimisation step ``k``."""

    def __init__(self, k: int, how: str):
        self.k, self.how = k, how

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.k:
            if self.how == "exception":
                raise RuntimeError("a failure after some steps")
            os.kill(os.getpid(), getattr(signal, self.how))


def assert_same_history(got: list[tuple], ref: list[tuple]) -> None:
    """The same rows (steps and epochs, each logged once), the same values to floating-point noise."""
    assert [r[:2] for r in got] == [r[:2] for r in ref]
    for a, b in zip(got, ref):
        for x, y in zip(a[2:], b[2:]):
            assert (x is None) == (y is None) and (x is None or float(x) == pytest.approx(float(y), rel=1e-5))


def resume_from_summary(run: Path, *extra: str) -> int:
    """Run the resume command the interrupted run wrote into summary.json (and printed)."""
    cmd = shlex.split(json.loads((run / "summary.json").read_text())["resume_command"])
    assert cmd[1:3] == ["-m", "experiments.run"]
    return main([*cmd[3:], *extra])


@pytest.fixture(scope="module")
def uninterrupted(world_overrides, tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("uninterrupted")
    run = train(load_config("siamese", ["debug"], [*world_overrides, *SMALL, f"output_root={out}", "run_id=a"]))
    return run, rows(run)


@pytest.mark.parametrize("k,how,ending,code", [
    (4, "SIGINT", "sigint", 130),        # mid-epoch Ctrl-C
    (3, "SIGTERM", "sigterm", 143),      # at an epoch boundary
    (5, "SIGUSR1", "sigusr1", 0),        # SLURM's warning before a preemption (no SLURM here: no requeue)
    (2, "exception", "exception", None),
])
def test_interrupted_and_resumed_run_matches_the_uninterrupted_one(k, how, ending, code, uninterrupted,
                                                                   world_overrides, tmp_path, capsys):
    ref_run, ref = uninterrupted
    cfg = load_config("siamese", ["debug"], [*world_overrides, *SMALL, f"output_root={tmp_path}", "run_id=b"])
    with pytest.raises(RunEnded if code is not None else RuntimeError) as e:
        train(cfg, callbacks=[StopAt(k, how)])
    run = tmp_path / "siamese" / "b"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ending"] == ending and summary["last_checkpoint"]
    if code is not None:
        assert e.value.ending == ending
        printed = capsys.readouterr()
        assert f"resume with: {summary['resume_command']}" in printed.out + printed.err
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] >= k
    assert (tmp_path / "siamese" / "latest").resolve() == run.resolve()

    assert resume_from_summary(run) == 0
    assert_same_history(rows(run), ref)       # the first part's rows kept, the rest continued in step
    final = json.loads((run / "summary.json").read_text())
    assert final["ending"] == "max_epochs" and final["global_step"] == 9 and len(final["segments"]) == 2
    assert final["final_metrics"]["val/corr_pck"] == pytest.approx(
        json.loads((ref_run / "summary.json").read_text())["final_metrics"]["val/corr_pck"], rel=1e-5)


def test_max_steps_then_more_continues_the_epoch(uninterrupted, world_overrides, tmp_path):
    _, ref = uninterrupted
    base = [*world_overrides, *SMALL, f"output_root={tmp_path}"]
    assert main(["siamese", "debug", *base, "run_id=c", "trainer.max_steps=4"]) == 0
    run = tmp_path / "siamese" / "c"
    assert json.loads((run / "summary.json").read_text())["ending"] == "max_steps"
    assert resume_from_summary(run, "trainer.max_steps=-1") == 0
    assert_same_history(rows(run), ref)


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(uninterrupted, world_overrides, tmp_path):
    """A killed process cannot save: the run resumes from its newest periodic last.ckpt (here every 2
    steps) and still ends with the uninterrupted run's metrics and history."""
    _, ref = uninterrupted
    cmd = [sys.executable, "-m", "experiments.run", "siamese", "debug", *world_overrides, *SMALL,
           f"output_root={tmp_path}", "run_id=k", "checkpoint.every_n_train_steps=2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "siamese" / "k" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            if last.is_file() and torch.load(last, map_location="cpu", weights_only=False)["global_step"] >= 2:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = last.parent.parent
    assert json.loads((run / "summary.json").read_text())["status"] in ("running", "finished")
    assert resume_from_summary(run) == 0
    assert_same_history(rows(run), ref)


def test_run_folders_are_never_overwritten_and_latest_needs_a_step(world_overrides, tmp_path, capsys):
    base = ["siamese", "debug", *world_overrides, *SMALL, f"output_root={tmp_path}", "trainer.max_epochs=1"]
    assert main([*base, "run_id=x"]) == 0
    run = tmp_path / "siamese" / "x"
    before = (run / "checkpoints" / "last.ckpt").read_bytes(), (run / "csv" / "metrics.csv").read_text()
    assert main([*base, "run_id=x"]) == 2                               # an existing run_id is refused
    assert "run_id" in capsys.readouterr().err
    assert main(["siamese", str(run / "config.yaml"), f"output_root={tmp_path}"]) == 0   # the saved config
    runs = sorted(p.name for p in (tmp_path / "siamese").iterdir() if not p.is_symlink())
    assert len(runs) == 2 and "x" in runs                               # ... makes a new run
    assert ((run / "checkpoints" / "last.ckpt").read_bytes(), (run / "csv" / "metrics.csv").read_text()) == before
    newest = (tmp_path / "siamese" / "latest").resolve()
    assert newest.name != "x"
    assert main([*base, "trainer.max_steps=abc"]) == 2                  # fails at start-up ...
    assert main([*base, "model.variant=release", "data.input_size=60"]) == 2   # ... or before its first step
    assert (tmp_path / "siamese" / "latest").resolve() == newest        # latest did not move
