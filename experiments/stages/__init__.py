"""Stage registry: each stage module has ``build(cfg, run_dir) -> StageParts``.

Stages are imported lazily so that ``--help`` and config errors do not pay for torch imports.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

STAGES: dict[str, str] = {
    "siamese": "experiments.stages.correspondence",
    "refine": "experiments.stages.correspondence",
    "pose": "experiments.stages.pose",
    "finetune": "experiments.stages.pose",
    "reid": "experiments.stages.reid",
}


@dataclass
class StageParts:
    module: Any                              # pl.LightningModule
    datamodule: Any                          # pl.LightningDataModule
    callbacks: list = field(default_factory=list)


def get_builder(stage: str) -> Callable[..., StageParts]:
    if stage not in STAGES:
        raise KeyError(f"no builder registered for stage '{stage}'; known: {', '.join(sorted(STAGES))}")
    return importlib.import_module(STAGES[stage]).build
