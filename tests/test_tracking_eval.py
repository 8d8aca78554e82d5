"""The tracking-evaluation callback (callbacks/tracking_eval.py) on the tiny synthetic world with tiny
untrained nets and GT poses as candidates (no pose estimator needed)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import corrtrack.tracking.pipeline as pipeline
from callbacks import tracking_eval
from callbacks.tracking_eval import (METRICS, TrackEvalSetupError, TrackingEvaluationCallback, load_fixed_models,
                                     truncate_video)
from corrtrack.tracking import TrackingConfig, load_videos
from lightning_modules.refine import RefinementModule
from lightning_modules.siamese import SiameseModule

REPO = Path(__file__).resolve().parents[1]
NET = {"siamese": {"width": 0.125, "feat_channels": 8}, "refinement": {"width": 0.125}}
TRACK = {"input_size": 128}
CUES = ["oks", "flow", "corr"]               # reid needs re-ID weights: covered by the skip test


def _siamese(seed: int = 0) -> SiameseModule:
    torch.manual_seed(seed)
    return SiameseModule(net={"siamese": NET["siamese"]}, input_size=64)


def _callback(root: Path, cues=CUES, **kw) -> TrackingEvaluationCallback:
    cb = TrackingEvaluationCallback(root, TrackingConfig.from_dict({"boxes": "gt-poses", **TRACK}), cues=cues, **kw)
    cb.prepare()
    return cb


def _save(module, path: Path) -> Path:
    """The module as the training stage checkpoints it (what corrtrack.checkpoints reads)."""
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def test_values_equal_the_command_line_and_cached_cues_are_not_recomputed(tiny_world, tmp_path, monkeypatch):
    from corrtrack.track import main as track_main

    root = tiny_world / "posetrack"
    module = _siamese()
    cb = _callback(root, max_videos=1)
    precomputed, tracked, evaluated = [], [], []
    pre, trk, ev = pipeline.precompute_video, pipeline.track, tracking_eval.evaluate_cues

    def count_pre(video, config, models, cues=("corr",), detections=None, base=None, progress=False):
        precomputed.append((tuple(cues), base is not None))
        return pre(video, config, models, cues=cues, detections=detections, base=base, progress=progress)

    def count_track(cache, config=None, cue=None, models=None):
        tracked.append(cue)
        return trk(cache, config, cue, models)

    def count_eval(videos, predictions, **kw):
        evaluated.append(sorted(predictions))
        return ev(videos, predictions, **kw)

    monkeypatch.setattr(pipeline, "precompute_video", count_pre)
    monkeypatch.setattr(pipeline, "track", count_track)
    monkeypatch.setattr(tracking_eval, "evaluate_cues", count_eval)
    first = cb.evaluate(module)
    assert precomputed == [(("oks", "flow"), False), (("corr",), True)]
    assert sorted(tracked) == ["corr", "flow", "oks"] and evaluated == [["flow", "oks"], ["corr"]]
    precomputed.clear(), tracked.clear(), evaluated.clear()
    second = cb.evaluate(module)
    assert precomputed == [(("corr",), True)] and tracked == ["corr"] and evaluated == [["corr"]]
    assert second == first                                       # same net, same numbers

    # the command line on the same net (saved as a checkpoint), the same video and settings
    ckpt = _save(module, tmp_path / "siamese.ckpt")
    out = tmp_path / "cli"
    assert track_main(["--posetrack-root", str(root), "--out", str(out), "--cue", "all", "--boxes", "gt-poses",
                       "--max-videos", "1", "--corr-ckpt", str(ckpt), "--device", "cpu", "--quiet",
                       *[f"{k}={v}" for k, v in TRACK.items()]]) == 0
    cli = json.loads((out / "results" / "table.json").read_text())["table"]
    for cue in CUES:
        for m in METRICS:
            assert math.isfinite(first[cue][m])
            assert first[cue][m] == cli[cue][m], (cue, m, first[cue][m], cli[cue][m])


def test_corr_follows_the_weights_and_the_modes_are_restored(tiny_world):
    cb = _callback(tiny_world / "posetrack", max_videos=1, max_frames=6)
    torch.manual_seed(0)
    module = RefinementModule(net=NET, input_size=64)           # frozen Siamese (eval, no grad) + refinement
    module.train()
    modes = {n: m.training for n, m in module.named_modules()}
    grads = {n: p.requires_grad for n, p in module.named_parameters()}
    assert not all(grads.values()) and any(grads.values()) and not module.siamese.training
    first = cb.evaluate(module)
    assert {n: m.training for n, m in module.named_modules()} == modes
    assert {n: p.requires_grad for n, p in module.named_parameters()} == grads
    assert all(p.grad is None for p in module.parameters())
    assert next(iter(cb.base_caches.values())).corr_maps is None          # the cached part has no corr maps
    with torch.no_grad():                                      # another refinement net
        for p in module.refinement.parameters():
            p.mul_(0.0)
    second = cb.evaluate(module)
    for cue in ("oks", "flow"):
        assert second[cue] == first[cue]
    assert second["corr"] != first["corr"]
    assert {n: m.training for n, m in module.named_modules()} == modes


def test_truncation_counts_labelled_frames(tiny_world):
    video = load_videos(tiny_world / "posetrack", "val", 1)[0]
    cut = truncate_video(video, 3)
    assert len(cut.labeled()) == 3 and cut.labeled() == video.labeled()[:3]
    assert len(cut) == video.labeled()[2] + 1 and cut.gt.frames == video.gt.frames[:len(cut)]
    assert len(video) > len(cut)                              # the original is left whole
    assert truncate_video(video, None) is video


def test_missing_weights_skip_or_fail_in_one_line(tmp_path, tiny_world):
    empty = tmp_path / "weights"
    empty.mkdir()
    cfg = TrackingConfig.from_dict({"boxes": "gt-poses"})
    models, skipped = load_fixed_models(cfg, ["oks", "reid", "corr"], None, None, None, weights_dir=empty)
    assert models.reid is None and list(skipped) == ["reid"]
    assert str(empty / "reid.ckpt") in skipped["reid"] and "reid cue is skipped" in skipped["reid"]
    section = {"enabled": True, "cues": ["oks", "reid", "corr"], "boxes": "gt-poses", "tracking": TRACK}
    cb = TrackingEvaluationCallback.from_config(section, tiny_world / "posetrack", weights_dir=empty)
    assert cb.cues == ["oks", "corr"] and "reid" in cb.skipped
    # boxes from GT need the pose estimator: without one no cue can run
    assert TrackingEvaluationCallback.from_config({**section, "boxes": "gt"}, tiny_world, weights_dir=empty) is None
    with pytest.raises(TrackEvalSetupError, match=r"^track_eval\.reid_ckpt .*nope\.ckpt: no such file or folder$"):
        TrackingEvaluationCallback.from_config({**section, "reid_ckpt": str(tmp_path / "nope.ckpt")}, tiny_world)
    wrong = _save(_siamese(), tmp_path / "siamese.ckpt")
    with pytest.raises(TrackEvalSetupError, match=r"^track_eval\.pose_ckpt\b.*siamese\.ckpt\b.*'siamese'"):
        TrackingEvaluationCallback.from_config({**section, "boxes": "gt", "pose_ckpt": str(wrong)}, tiny_world)
    with pytest.raises(TrackEvalSetupError, match="track_eval.tracking: .*unknown key 'tau_cor'"):
        TrackingEvaluationCallback.from_config({**section, "tracking": {"tau_cor": 0.3}}, tiny_world)
    assert TrackingEvaluationCallback.from_config({**section, "enabled": False}, tiny_world) is None


def test_stage_config_holds_every_tracking_key():
    """track_eval.tracking of the siamese (and refine) config inherits tracking.yaml but cue and boxes."""
    import yaml

    from experiments.config import CONFIG_DIR, load_config

    tracking = yaml.safe_load((CONFIG_DIR / "tracking.yaml").read_text())
    for stage in ("siamese", "refine"):
        section = load_config(stage).track_eval
        assert dict(section.tracking) == {k: v for k, v in tracking.items() if k not in ("cue", "boxes")}
        assert section.boxes in ("gt", "detections", "gt-poses")
        assert set(section.cues) <= {"oks", "flow", "reid", "corr"}


def test_training_run_logs_every_key_every_n_validations_and_a_wandb_table(world_overrides, outputs):
    """The real entry point (siamese debug: one video cut after 4 labelled frames), W&B offline on, three
    validations with every_n_validations=2: evaluations at the 1st and the 3rd."""
    import csv

    from experiments.run import main

    assert main(["siamese", "debug", *world_overrides, *outputs, "data.input_size=64", "model.width=0.125",
                 "trainer.max_epochs=3", "trainer.max_steps=3", "trainer.limit_train_batches=1",
                 "figures.every_n_validations=0", "run_id=r", "logger.wandb=true",
                 f"track_eval.cues=[{','.join(CUES)}]", "track_eval.every_n_validations=2"]) == 0
    import wandb

    wandb.finish()                                             # close the run this process opened
    run = Path(outputs[0].split("=", 1)[1]) / "siamese" / "r"
    metrics = json.loads((run / "summary.json").read_text())["final_metrics"]
    keys = {f"track/{c}/{m}" for c in CUES for m in METRICS}
    for k in keys:
        assert math.isfinite(metrics[k]), k
    assert metrics["perf/track_eval_s"] > 0
    rows = [r for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r.get("track/corr/mota")]
    assert [int(r["epoch"]) for r in rows] == [0, 2]
    assert all(r[k] != "" for r in rows for k in keys)
    tables = sorted((run / "wandb").rglob("track/table_*.table.json"), key=lambda p: p.stat().st_mtime)
    assert len(tables) == 2                                    # one table per evaluation, all rows so far
    table = json.loads(tables[-1].read_text())
    assert table["columns"][:3] == ["epoch", "step", "cue"]
    assert [(r[0], r[2]) for r in table["data"]] == [(e, c) for e in (0, 2) for c in CUES]
    assert [r[4] for r in table["data"][3:]] == pytest.approx([float(rows[1][f"track/{c}/mota"]) for c in CUES],
                                                              rel=1e-6)


def test_a_missing_image_skips_the_evaluation_not_the_run(world_overrides, outputs, tiny_world, tmp_path, caplog):
    """A val video whose frames are missing: one warning, no track/* values, training finishes."""
    import shutil

    from experiments.run import main

    broken = tmp_path / "posetrack"
    (broken / "annotations" / "val").mkdir(parents=True)
    src = sorted((tiny_world / "posetrack" / "annotations" / "val").glob("*.json"))[0]
    shutil.copy(src, broken / "annotations" / "val" / src.name)      # no images/ beside it
    with caplog.at_level("WARNING"):
        assert main(["siamese", "debug", *world_overrides, *outputs, f"data.posetrack_root={broken}",
                     "data.input_size=64", "model.width=0.125", "trainer.max_steps=1",
                     "trainer.limit_train_batches=1", "figures.every_n_validations=0", "run_id=b"]) == 0
    run = Path(outputs[0].split("=", 1)[1]) / "siamese" / "b"
    metrics = json.loads((run / "summary.json").read_text())["final_metrics"]
    assert "val/corr_pck" in metrics and not any(k.startswith("track/") for k in metrics)
    warned = [r.getMessage() for r in caplog.records if "track_eval" in r.getMessage()]
    assert len(warned) == 1 and "skipped" in warned[0] and "image missing" in warned[0]


def test_two_process_ddp_logs_the_single_process_values(world_overrides, tmp_path):
    """2 CPU processes (gloo): both ranks log the same track/* values, a ModelCheckpoint monitors
    track/corr/mota, and one process validating the saved net logs the same values."""
    import pytorch_lightning as pl

    from experiments.config import load_config
    from experiments.stages import get_builder

    overrides = [*world_overrides, "data.input_size=64", "model.width=0.125", "data.val_max_images=4",
                 "figures.every_n_validations=0", f"track_eval.cues=[{','.join(CUES)}]", "track_eval.max_frames=3"]
    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "ddp_track_eval.py"), str(out), "2", *overrides],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    logged = ranks[0]["metrics"]
    assert set(logged) == {f"track/{c}/{m}" for c in CUES for m in METRICS}
    assert ranks[1]["metrics"] == logged
    assert ranks[0]["best_score"] == ranks[1]["best_score"] == logged["track/corr/mota"]
    assert Path(ranks[0]["best_path"]).is_file()

    # one process validating the saved net, built by the stage builder from the same config
    cfg = load_config("siamese", ["debug"], overrides)
    parts = get_builder("siamese")(cfg, tmp_path / "single")
    module = SiameseModule.load_from_checkpoint(ranks[0]["best_path"], map_location="cpu")
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=1, callbacks=parts.callbacks)
    trainer.validate(module, datamodule=parts.datamodule, verbose=False)
    single = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("track/")}
    assert single == logged
