"""Slow tier (`make test-slow`): short training smoke runs and the benchmarks, end to end."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _losses(run: Path) -> list[float]:
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


@pytest.mark.parametrize("stage", ["siamese", "pose"])
def test_cpu_preset_smoke_run_lowers_the_loss(stage, world_overrides, tmp_path):
    from experiments.run import main

    out = tmp_path / "outputs"
    assert main([stage, "cpu", *world_overrides, f"output_root={out}", "run_id=smoke", "logger.wandb=false",
                 "trainer.max_epochs=6", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
                 "data.num_workers=0"]) == 0
    run = out / stage / "smoke"
    losses = _losses(run)
    assert len(losses) >= 10
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, f"{stage} loss did not fall: {first:.3f} -> {last:.3f}"
    summary = json.loads((run / "summary.json").read_text())
    assert Path(summary["best_checkpoint"]).is_file()


def test_eval_benchmark_runs_and_reports_speed(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "corrtrack.evaluation.bench", "--sequences", "6", "--frames",
                           "20", "--repeat", "1", "--out", str(tmp_path / "set")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sequences/s" in proc.stdout or "seq/s" in proc.stdout, proc.stdout


def test_propagation_benchmark_runs_without_a_checkpoint(tiny_world, tmp_path):
    out = tmp_path / "prop.json"
    proc = subprocess.run([sys.executable, "-m", "corrtrack.bench", "propagation", "--data", str(tiny_world),
                           "--input-size", "128", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result, "empty benchmark result"
