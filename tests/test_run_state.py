"""Which checkpoint a run folder resumes from (callbacks.run_state, experiments.run.plan_run): the newest
state of any kind (last.ckpt, best-*.ckpt, Lightning's hpc_ckpt_N.ckpt), never an older one, and the files
of earlier attempts removed on resume instead of piling up. Checkpoints here are small dicts in the layout
Lightning writes (global_step, epoch, callbacks with DataPosition and ModelCheckpoint states)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from callbacks.run_state import newest_checkpoint, stale_checkpoints
from experiments.config import ConfigError, load_config
from experiments.run import plan_run


def _ckpt(path: Path, step: int, epoch: int, batches: int, best: list[Path] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mc = {"best_k_models": {str(p): torch.tensor(0.5) for p in best},
          "best_model_path": str(best[0]) if best else "", "dirpath": str(path.parent)}
    torch.save({"global_step": step, "epoch": epoch, "state_dict": {"siamese.w": torch.zeros(1)},
                "hyper_parameters": {"stage": "siamese"},
                "callbacks": {"DataPosition": {"epoch": epoch, "batches": batches},
                              "ModelCheckpoint{'monitor': 'val/corr_pck'}": mc}}, path)
    return path


@pytest.fixture()
def run(tmp_path) -> Path:
    d = tmp_path / "outputs" / "siamese" / "r"
    (d / "checkpoints").mkdir(parents=True)
    (d / "config.yaml").write_text("stage: siamese\n")
    (d / "summary.json").write_text(json.dumps({"slurm_job_id": "77"}))
    return d


@pytest.fixture()
def cfg(tmp_path):
    return load_config("siamese", ["debug"], [f"output_root={tmp_path / 'outputs'}"])


@pytest.fixture(autouse=True)
def _no_rank(monkeypatch):
    for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_PROCID", "RANK", "LOCAL_RANK", "CORRTRACK_RUN_DIR"):
        monkeypatch.delenv(k, raising=False)


def test_the_newest_state_wins_whichever_kind(run):
    ck = run / "checkpoints"
    _ckpt(ck / "last.ckpt", 10, 2, 0)
    best = _ckpt(ck / "best-epoch=001-step=10.ckpt", 10, 1, 5)      # same step, before the epoch's end
    assert newest_checkpoint(run) == ck / "last.ckpt"
    hpc = _ckpt(run / "hpc_ckpt_1.ckpt", 13, 2, 3)                  # SIGUSR1 after last.ckpt
    assert newest_checkpoint(run) == hpc
    _ckpt(ck / "best-epoch=002-step=15.ckpt", 15, 2, 5)
    assert newest_checkpoint(run).name == "best-epoch=002-step=15.ckpt"
    os.utime(best, (1e9 + 10 ** 6, 1e9 + 10 ** 6))                 # a newer mtime does not make it newer
    assert newest_checkpoint(run).name == "best-epoch=002-step=15.ckpt"


def test_unreadable_checkpoints_are_skipped(run):
    ck = run / "checkpoints"
    _ckpt(ck / "last.ckpt", 4, 1, 0)
    (run / "hpc_ckpt_2.ckpt").write_bytes(b"")                      # killed while Lightning wrote it
    good = (ck / "last.ckpt").read_bytes()
    (ck / "best-epoch=003-step=9.ckpt").write_bytes(good[: len(good) // 2])
    assert newest_checkpoint(run) == ck / "last.ckpt"
    (ck / "last.ckpt").unlink()
    assert newest_checkpoint(run) is None


def test_resume_and_requeue_take_the_newest_and_never_roll_back(run, cfg, monkeypatch):
    ck = run / "checkpoints"
    _ckpt(ck / "last.ckpt", 4, 1, 0)
    _ckpt(run / "hpc_ckpt_1.ckpt", 6, 1, 2)
    hpc2 = _ckpt(run / "hpc_ckpt_2.ckpt", 8, 1, 4)
    cfg.resume = str(run)
    plan = plan_run(cfg)
    assert (plan.run_dir, plan.resume_from, plan.continuing) == (run, hpc2, True)
    assert sorted(p.name for p in stale_checkpoints(run, hpc2)) == ["hpc_ckpt_1.ckpt"]
    # the resumed attempt trains on and writes last.ckpt at step 12: a requeue takes it, not hpc_ckpt_2
    _ckpt(ck / "last.ckpt", 12, 2, 1)
    cfg.resume = None
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    cfg.run_id = None
    plan = plan_run(cfg)
    assert plan.run_dir.name == "slurm-77"                           # its own folder is slurm-77, not r
    (run.parent / "slurm-77").symlink_to(run)
    plan = plan_run(cfg)
    assert plan.resume_from.resolve() == (ck / "last.ckpt").resolve() and plan.continuing
    assert sorted(p.name for p in stale_checkpoints(run, ck / "last.ckpt")) == ["hpc_ckpt_1.ckpt",
                                                                              "hpc_ckpt_2.ckpt"]


def test_earlier_attempts_files_are_listed_and_nothing_else(run):
    ck = run / "checkpoints"
    tracked = ck / "best-epoch=001-step=6.ckpt"
    _ckpt(tracked, 6, 1, 3)
    orphan = _ckpt(ck / "best-epoch=002-step=9.ckpt", 9, 2, 3)     # an abandoned attempt's best
    version = _ckpt(ck / "best-epoch=001-step=6-v1.ckpt", 6, 1, 3)
    mine = _ckpt(ck / "my-copy.ckpt", 2, 0, 1)                      # a user's file: never touched
    newer_hpc = _ckpt(run / "hpc_ckpt_3.ckpt", 20, 3, 0)            # a newer state is never listed
    last = _ckpt(ck / "last.ckpt", 8, 2, 0, best=[tracked])
    stale = set(stale_checkpoints(run, last))
    assert stale == {orphan, version}
    assert tracked not in stale and mine not in stale and newer_hpc not in stale


def test_another_stages_run_is_refused(run, tmp_path):
    _ckpt(run / "checkpoints" / "last.ckpt", 4, 1, 0)
    cfg = load_config("refine", ["debug"], [f"output_root={tmp_path / 'outputs'}", f"resume={run}"])
    with pytest.raises(ConfigError, match="'siamese' run, not a 'refine' run"):
        plan_run(cfg)
    cfg.resume = str(run / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match="resume"):
        plan_run(cfg)


def test_last_checkpoint_is_also_written_by_the_clock(world_overrides, tmp_path):
    """checkpoint.every_minutes: a periodic last.ckpt by wall clock (what a SIGKILL can lose)."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from experiments.run import _build

    base = [*world_overrides, f"output_root={tmp_path}", "model.width=0.125"]
    timed = []
    for minutes in ("0.5", "null"):
        cfg = load_config("siamese", ["debug"], [*base, f"checkpoint.every_minutes={minutes}"])
        trainer = _build(cfg, tmp_path / f"r{minutes}", {}, True, None)[0]
        timed.append([c for c in trainer.callbacks
                      if isinstance(c, ModelCheckpoint) and c._train_time_interval is not None])
    assert len(timed[0]) == 1 and timed[0][0]._train_time_interval.total_seconds() == 30
    assert timed[0][0].filename == "last" and not timed[1]
    with pytest.raises(ConfigError, match="checkpoint.every_minutes"):
        load_config("siamese", [], ["checkpoint.every_minutes=0"])
