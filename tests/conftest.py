"""Shared fixtures: one tiny synthetic world per test session (generated once, < 30 s)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never talk to W&B servers and never write into the user's outputs/.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# One intra-op thread per test process: the tests use small nets, and on a 2-core machine extra OpenMP
# threads only contend with DataLoader workers and DDP peers (measured up to 7x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """Path of a generated `tiny` synthetic world (seed 0): <root>/coco, <root>/posetrack."""
    from corrtrack.synth import ensure_world

    root = tmp_path_factory.mktemp("world") / "tiny-seed0"
    return Path(ensure_world(root, "tiny", 0, progress=False))


@pytest.fixture(scope="session")
def world_overrides(tiny_world) -> list[str]:
    """Config overrides that point a run at the session's tiny world."""
    return [f"data.synth.root={tiny_world.parent}", "data.synth.preset=tiny", "data.synth.seed=0",
            "data.coco_root=synth", "data.posetrack_root=synth"]


@pytest.fixture()
def outputs(tmp_path) -> list[str]:
    """Config override that sends a run's outputs to a temporary folder."""
    return [f"output_root={tmp_path / 'outputs'}"]
