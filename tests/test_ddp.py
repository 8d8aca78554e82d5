"""A real 2-process DDP run on CPU (gloo), launched the way a user launches it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_process_cpu_ddp_shares_one_run_folder(tmp_path, world_overrides):
    out = tmp_path / "outputs"
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    env.pop("CORRTRACK_RUN_ID", None)
    cmd = [sys.executable, "-m", "experiments.run", "siamese", "debug", *world_overrides,
           f"output_root={out}", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
           "trainer.max_steps=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
           "model.width=0.125", "data.input_size=64", "data.val_max_images=4", "figures.every_n_validations=0"]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = [p for p in (out / "siamese").iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1, f"ranks wrote different run folders: {runs}"
    run = runs[0]
    assert (out / "siamese" / "latest").resolve() == run.resolve()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == 2
    assert "val/corr_pck" in summary["final_metrics"]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "distributed_backend=gloo" in proc.stdout + proc.stderr
