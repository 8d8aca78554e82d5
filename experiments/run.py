"""The single entry point of every training stage.

    python -m experiments.run STAGE [PRESET ...] [key=value ...]

e.g. ``python -m experiments.run siamese cpu trainer.max_epochs=2``. Arguments without ``=`` are presets,
merged in order after the stage file; ``key=value`` arguments override any config key (this is also
what a W&B sweep agent passes). Each run writes ``<output_root>/<stage>/<run_id>/`` with the resolved
``config.yaml``, ``checkpoints/``, ``csv/metrics.csv``, ``wandb/`` and ``summary.json``;
``<output_root>/<stage>/latest`` points to the newest run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from corrtrack.checkpoints import CheckpointError
from experiments.config import ConfigError, available_presets, available_stages, load_config


def _global_rank() -> int:
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


def resolve_run_id(cfg: DictConfig) -> str:
    """The run id shared by every process of one run.

    DDP re-launches this script per device and SLURM starts one task per device: all of them must write
    into the same folder, so the id comes from the config, else the environment of the launching process
    (``CORRTRACK_RUN_ID``, set below before Lightning spawns workers), else the SLURM job, else a timestamp.
    """
    if cfg.run_id:
        run_id = str(cfg.run_id)
    elif os.environ.get("CORRTRACK_RUN_ID"):
        run_id = os.environ["CORRTRACK_RUN_ID"]
    elif os.environ.get("SLURM_JOB_ID"):
        run_id = f"slurm-{os.environ['SLURM_JOB_ID']}"
    else:
        run_id = time.strftime("%Y%m%d-%H%M%S")
    os.environ["CORRTRACK_RUN_ID"] = run_id
    return run_id


def stage_dir(cfg: DictConfig, stage: str | None = None) -> Path:
    return Path(cfg.output_root) / (stage or cfg.stage)


def _point_latest(run_dir: Path) -> None:
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)  # atomic: readers never see a missing link


def set_cpu_threads(cfg: DictConfig) -> int:
    """Limit torch's intra-op threads so training processes and data workers do not oversubscribe the
    cores: OpenMP threads that wait for a descheduled peer spin, and on a 2-core machine two 2-thread
    processes ran a training step up to 10x slower than one thread each. Auto: the cores divided by the
    training processes. An explicit ``cpu_threads`` or ``OMP_NUM_THREADS`` wins."""
    import torch

    if cfg.cpu_threads:
        n = int(cfg.cpu_threads)
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        devices = cfg.trainer.devices
        procs = devices if isinstance(devices, int) and devices > 0 and cfg.trainer.accelerator == "cpu" else 1
        n = max(1, cores // procs)  # data workers mostly wait on the training step: they need no core of their own
    torch.set_num_threads(n)
    return n


def make_loggers(cfg: DictConfig, run_dir: Path) -> list:
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    loggers: list = []
    if cfg.logger.csv:
        loggers.append(CSVLogger(save_dir=str(run_dir), name="", version="csv"))
    if cfg.logger.wandb:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(WandbLogger(project=cfg.logger.project, entity=cfg.logger.entity,
                                   group=cfg.logger.group, tags=list(cfg.logger.tags),
                                   name=f"{cfg.stage}-{run_dir.name}", save_dir=str(run_dir),
                                   config=OmegaConf.to_container(cfg, resolve=True)))
    return loggers


def train(cfg: DictConfig) -> Path:
    """Run one training stage from a resolved config; returns the run folder."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

    from callbacks.throughput import Throughput
    from experiments.stages import get_builder

    pl.seed_everything(int(cfg.seed), workers=True)
    set_cpu_threads(cfg)
    run_id = resolve_run_id(cfg)
    run_dir = (stage_dir(cfg) / run_id).resolve()
    rank = _global_rank()
    if rank == 0:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml")
        _point_latest(run_dir)

    if cfg.resume:   # a wrong file is one line here, not a traceback from inside Lightning
        from corrtrack import checkpoints

        checkpoints.load(cfg.resume, accept=(cfg.stage,), what="resume")
    parts = get_builder(cfg.stage)(cfg, run_dir)
    ckpt_dir = str(run_dir / "checkpoints")
    monitor = cfg.checkpoint.monitor
    # With a monitor, `last.ckpt` comes from a second, unmonitored callback that rewrites it after every
    # epoch (a monitored ModelCheckpoint rewrites `last` only when it saves a new best).
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, monitor=monitor, mode=cfg.checkpoint.mode,
                           save_top_k=cfg.checkpoint.save_top_k,
                           save_last=bool(cfg.checkpoint.save_last) and monitor is None,
                           filename="best-{epoch:03d}-{step}" if monitor else "{epoch:03d}-{step}")
    callbacks = [ckpt, Throughput(), *parts.callbacks]
    last = None
    if cfg.checkpoint.save_last and monitor is not None:
        last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                               enable_version_counter=False)
        callbacks.append(last)
    loggers = make_loggers(cfg, run_dir) if not cfg.trainer.fast_dev_run else []
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer = pl.Trainer(**trainer_kwargs, default_root_dir=str(run_dir), logger=loggers or False,
                         callbacks=callbacks)
    for lg in loggers:
        if hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(parts.module, datamodule=parts.datamodule, ckpt_path=cfg.resume)

    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        summary = {"stage": cfg.stage, "run_dir": str(run_dir),
                   "best_checkpoint": ckpt.best_model_path or None,
                   "last_checkpoint": (last.best_model_path if last else ckpt.last_model_path) or None,
                   "global_step": trainer.global_step, "epochs": trainer.current_epoch,
                   "final_metrics": metrics}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        print(f"\n[corrtrack] {cfg.stage} run finished: {run_dir}")
        print(f"[corrtrack]   config      {run_dir / 'config.yaml'}")
        print(f"[corrtrack]   checkpoints {run_dir / 'checkpoints'}")
        if cfg.logger.csv and not cfg.trainer.fast_dev_run:
            print(f"[corrtrack]   metrics     {run_dir / 'csv' / 'metrics.csv'}")
        for k in sorted(metrics):
            print(f"[corrtrack]   {k:32s} {metrics[k]:.4f}")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.run",
        description="Train a corrtrack stage: STAGE [PRESET ...] [key=value ...]",
        epilog=f"stages: {', '.join(available_stages())}")
    parser.add_argument("stage", help="siamese | refine | pose | finetune")
    parser.add_argument("items", nargs="*", help="presets (no '=') and key=value overrides")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    presets = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    try:
        cfg = load_config(args.stage, presets, overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        if args.stage in available_stages():
            print(f"presets for '{args.stage}': {', '.join(available_presets(args.stage))}", file=sys.stderr)
        return 2
    if args.print_config:
        print(OmegaConf.to_yaml(cfg))
        return 0
    try:
        train(cfg)
    except (FileNotFoundError, ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
