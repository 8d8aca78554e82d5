"""Helpers shared by the tests that compare a training run with an interrupted and resumed one."""
from __future__ import annotations

import csv
from pathlib import Path


def metrics_history(run: Path) -> list[tuple]:
    """The logged (step, epoch, train/loss, val/loss, val/corr_pck) rows of a run's metrics.csv that hold
    at least one of the three values, sorted by step (a step's training row before its validation row)."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = [(int(r["step"]), r["epoch"], *(r.get(k) or None for k in ("train/loss", "val/loss", "val/corr_pck")))
                for r in csv.DictReader(f)]
    return sorted((r for r in rows if any(r[2:])), key=lambda t: (t[0], t[2] is None))
