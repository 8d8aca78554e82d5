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
    if how == "exception":   # the failing batch's own row was never logged; every other row is there
        assert summary["error"] == "a failure after some steps"
        assert_same_history([r for r in rows(run) if r[3]], [r for r in ref if r[3]])
    else:
        assert_same_history(rows(run), ref)   # the first part's rows kept, the rest continued in step
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


def test_a_run_stopped_before_any_validation_leaves_a_checkpoint_the_next_stage_uses(world_overrides,
                                                                                    tmp_path):
    """max_steps reached before the first validation (validation every 2nd epoch): no best checkpoint, but
    last.ckpt, which `latest` then gives the refine stage; its frozen Siamese tensors are those weights."""
    base = ["debug", *world_overrides, *SMALL, f"output_root={tmp_path}", "trainer.max_steps=2",
            "trainer.check_val_every_n_epoch=2"]
    assert main(["siamese", *base]) == 0
    s_run = (tmp_path / "siamese" / "latest").resolve()
    s_sum = json.loads((s_run / "summary.json").read_text())
    assert s_sum["best_checkpoint"] is None and s_sum["ending"] == "max_steps"
    assert main(["refine", *base, "model.siamese_ckpt=latest", "model.width=0.125"]) == 0
    s = torch.load(s_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    r_run = (tmp_path / "refine" / "latest").resolve()
    r = torch.load(r_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    sia = {k: v for k, v in s.items() if k.startswith("siamese.")}
    assert sia and all(torch.equal(r[k], v) for k, v in sia.items())


def test_slurm_requeue_continues_in_its_own_folder(tmp_path, monkeypatch):
    """A requeued job keeps its job id: it finds the folder it wrote and resumes from its last.ckpt."""
    from experiments.run import plan_run

    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    for k in ("SLURM_ARRAY_JOB_ID", "SLURM_PROCID", "RANK", "LOCAL_RANK", "CORRTRACK_RUN_DIR"):
        monkeypatch.delenv(k, raising=False)
    cfg = load_config("siamese", ["debug"], [f"output_root={tmp_path}"])
    first = plan_run(cfg)
    assert first.run_dir.name == "slurm-4242" and first.resume_from is None
    (first.run_dir / "checkpoints").mkdir(parents=True)
    (first.run_dir / "summary.json").write_text(json.dumps({"slurm_job_id": "4242", "status": "stopped"}))
    torch.save({"global_step": 3, "epoch": 0}, first.run_dir / "checkpoints" / "last.ckpt")
    again = plan_run(cfg)
    assert again.run_dir == first.run_dir and again.continuing
    assert again.resume_from == first.run_dir / "checkpoints" / "last.ckpt"
    monkeypatch.setenv("SLURM_JOB_ID", "4343")                   # another job: its own folder
    assert plan_run(cfg).run_dir.name == "slurm-4343"


def test_unreadable_training_images_are_skipped_counted_and_warned_once(tiny_world, world_overrides, tmp_path,
                                                                        caplog):
    """Every other COCO training image unreadable: the pose stage trains on the readable ones (never on a
    blank frame with real joints), logs data/skipped per epoch, and warns once per file."""
    import shutil

    coco = tmp_path / "coco"
    shutil.copytree(tiny_world / "coco", coco)
    broken = sorted((coco / "images" / "train2017").glob("*.jpg"))[::2]
    for f in broken:
        f.write_bytes(b"")
    caplog.set_level("WARNING")
    args = ["pose", "debug", *world_overrides, f"data.coco_root={coco}", f"output_root={tmp_path / 'o'}",
            "model.net.width=0.125", "data.input_size=[64,48]", "data.num_workers=0", "cpu_threads=1",
            "trainer.max_epochs=2", "trainer.max_steps=-1", "data.batch_size=4", "run_id=p"]
    assert main(args) == 0
    with open(tmp_path / "o" / "pose" / "p" / "csv" / "metrics.csv", newline="") as f:
        skipped = [float(r["data/skipped"]) for r in csv.DictReader(f) if r.get("data/skipped")]
    assert len(skipped) == 2 and sum(skipped) > 0                 # one value per epoch
    warned = [r.getMessage() for r in caplog.records if "skipped an unreadable training image" in r.getMessage()]
    assert warned and len(warned) == len(set(warned)) and all(any(str(b) in w for b in broken) for w in warned)


def test_topdown_training_never_pairs_an_unreadable_image_with_joints(tiny_world, tmp_path):
    import shutil

    from datamodules.sources import load_coco_records
    from datamodules.topdown import TopDownDataset

    coco = tmp_path / "coco"
    shutil.copytree(tiny_world / "coco", coco)
    records = load_coco_records(coco, "train")
    records[0].path.write_bytes(b"not a jpeg")
    ds = TopDownDataset(records, (64, 48), stride=8, train=True)
    first_other = next(i for i, inst in enumerate(ds.instances) if inst.record != 0)
    s = ds[(0, 0)]
    assert set(s["skipped"]) == {str(records[0].path)}   # once per crop of that image passed over
    assert s["image_id"] == records[ds.instances[first_other].record].image_id   # the next readable crop
