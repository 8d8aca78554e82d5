"""The single entry point of every training stage.

    python -m experiments.run STAGE [PRESET ...] [key=value ...]

e.g. ``python -m experiments.run siamese cpu trainer.max_epochs=2``. Arguments without ``=`` are presets,
merged in order after the stage file; ``key=value`` arguments override any config key (this is also
what a W&B sweep agent passes). Each run writes ``<output_root>/<stage>/<run_id>/`` with the resolved
``config.yaml``, ``checkpoints/`` (``last.ckpt`` however the run ends, and the best by the stage's
monitored metric), ``csv/metrics.csv``, ``wandb/`` and ``summary.json`` (how and where the run ended,
and the command that resumes it). ``<output_root>/<stage>/latest`` points to the newest run that has
done at least one optimisation step.

Run folders are never overwritten: an existing ``run_id`` is refused, a timestamp id that exists gets a
suffix, and re-running a saved ``config.yaml`` starts a new run. ``resume=RUN_DIR`` (or a checkpoint in
it, or ``latest``) continues that run in its folder: same global step, epoch, optimiser and schedule, the
same data order and augmentation, and the metrics history kept. Under SLURM, a requeued job (same job id)
resumes from its own folder by itself; SIGUSR1 (``#SBATCH --signal=SIGUSR1@120``) saves, stops and
requeues the job.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from corrtrack.checkpoints import CheckpointError
from corrtrack.cli import entry_point
from experiments.config import ConfigError, available_presets, available_stages, load_config

#: exit status of a run stopped by a signal (128 + signal number, as a shell reports it)
EXIT_SIGNAL = {"sigint": 130, "sigterm": 143, "sigusr1": 0}


def _global_rank() -> int:
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


def _slurm_job_id() -> str | None:
    """The id of the SLURM job (``ARRAYJOB_TASK`` for an array task) that runs this process; a requeued job
    keeps it."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID") or None


def _slurm_run_name(job: str) -> str:
    """The run folder name of a SLURM job: ``slurm-<job id>``; a run started by a W&B sweep agent (which
    runs one training after another inside one job) adds the W&B run id, so each sweep point gets its own
    folder and a requeue never resumes another point's checkpoint."""
    wandb_run = os.environ.get("WANDB_RUN_ID") if os.environ.get("WANDB_SWEEP_ID") else None
    return f"slurm-{job}-{wandb_run}" if wandb_run else f"slurm-{job}"


def stage_dir(cfg: DictConfig, stage: str | None = None) -> Path:
    return Path(cfg.output_root) / (stage or cfg.stage)


def _point_latest(run_dir: Path) -> None:
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)  # atomic: readers never see a missing link


def _read_summary(run_dir: Path) -> dict:
    try:
        s = json.loads((run_dir / "summary.json").read_text())
        return s if isinstance(s, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_summary(run_dir: Path, summary: dict) -> None:
    tmp = run_dir / f".summary.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, run_dir / "summary.json")


@dataclass
class RunPlan:
    """Where a run writes and what it continues: ``resume_from`` is the checkpoint whose training state
    it restores (None: a fresh start); ``continuing``: it continues the run in ``run_dir``."""
    run_dir: Path
    resume_from: Path | None = None
    continuing: bool = False


def _owns(run_dir: Path, job: str | None) -> bool:
    """The folder belongs to this SLURM job (a requeued job finds its own folder again)."""
    return job is not None and str(_read_summary(run_dir).get("slurm_job_id")) == job


def _resume_target(spec: str, cfg: DictConfig) -> tuple[Path, Path | None]:
    """(checkpoint, its run folder or None) of ``resume=``: a run folder (its newest checkpoint, whichever
    kind: ``callbacks.run_state.newest_checkpoint``), ``latest`` (the newest run of this stage), or a
    checkpoint file (used as given)."""
    from corrtrack import checkpoints

    if spec == "latest":
        run = checkpoints.latest_run(cfg.output_root, cfg.stage, what="resume")
    elif Path(spec).expanduser().is_dir():
        run = Path(spec).expanduser().resolve()
    else:
        path = checkpoints.resolve(spec, what="resume").resolve()
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        if not (run / "config.yaml").is_file():
            return path, None
        _check_run_stage(run, cfg)
        return path, run
    from callbacks.run_state import newest_checkpoint

    _check_run_stage(run, cfg)
    newest = newest_checkpoint(run)
    if newest is None:
        raise CheckpointError(f"resume: run folder {run} has no readable checkpoint to resume from "
                              f"(checkpoints/*.ckpt, hpc_ckpt_*.ckpt)")
    return newest, run


def _check_run_stage(run: Path, cfg: DictConfig) -> None:
    """A run folder of another stage (by its config.yaml) is refused: resuming would write into it."""
    cfg_file = run / "config.yaml"
    try:
        stage = OmegaConf.load(cfg_file).get("stage") if cfg_file.is_file() else None
    except Exception as e:   # a broken config.yaml: one line naming it
        raise ConfigError(f"resume: {cfg_file}: not a readable run config ({type(e).__name__})") from None
    if stage is not None and str(stage) != str(cfg.stage):
        raise ConfigError(f"resume: {run} is a '{stage}' run, not a '{cfg.stage}' run; resume it with "
                          f"`python -m experiments.run {stage} {cfg_file} resume={run}`")


def plan_run(cfg: DictConfig) -> RunPlan:
    """Decide the run folder (see the module docstring); only rank 0 checks for existing folders. The
    processes Lightning starts for the other ranks inherit rank 0's decision (``CORRTRACK_RUN_DIR``)."""
    rank = _global_rank()
    inherited = os.environ.get("CORRTRACK_RUN_DIR")
    if rank > 0 and inherited:
        resume = os.environ.get("CORRTRACK_RESUME_CKPT")
        return RunPlan(Path(inherited), Path(resume) if resume else None, bool(resume))
    base = stage_dir(cfg).resolve()
    job = _slurm_job_id()
    if cfg.resume:
        ckpt, run = _resume_target(str(cfg.resume), cfg)
        if run is not None and (not cfg.run_id or str(cfg.run_id) == run.name):
            return RunPlan(run, ckpt, continuing=True)
        plan = RunPlan(base / str(cfg.run_id or time.strftime("%Y%m%d-%H%M%S")), ckpt)
    elif cfg.run_id:
        plan = RunPlan(base / str(cfg.run_id))
    elif job:
        plan = RunPlan(base / _slurm_run_name(job))
    else:
        plan = RunPlan(base / time.strftime("%Y%m%d-%H%M%S"))
    d = plan.run_dir
    if not cfg.resume and _owns(d, job):    # this SLURM job, requeued: continue from its own folder
        from callbacks.run_state import newest_checkpoint

        newest = newest_checkpoint(d)
        return RunPlan(d, newest, continuing=newest is not None)
    if rank > 0 or not (d.exists() and any(d.iterdir())):
        return plan
    if cfg.run_id or job:
        key = "run_id" if cfg.run_id else "the SLURM job's run folder"
        raise ConfigError(f"{key}: {d} already holds a run; choose another run_id, or continue that run "
                          f"with resume={d}")
    for k in range(2, 1000):                # two runs started in the same second
        cand = d.with_name(f"{d.name}-{k}")
        if not cand.exists():
            return RunPlan(cand, plan.resume_from)
    raise ConfigError(f"output_root: cannot find a free run folder name beside {d}")


def _saved_config(cfg: DictConfig) -> DictConfig:
    """The config as saved in ``config.yaml``: without ``run_id`` and ``resume``, so that running the
    saved file again starts a new run (``resume=RUN_DIR`` continues this one)."""
    saved = cfg.copy()
    saved.run_id = None
    saved.resume = None
    return saved


def set_cpu_threads(cfg: DictConfig) -> int:
    """Limit torch's intra-op threads so training processes and data workers do not oversubscribe the
    cores: OpenMP threads that wait for a descheduled peer spin, and on a 2-core machine two 2-thread
    processes ran a training step up to 10x slower than one thread each. Auto: the CPUs SLURM gives each
    task (``--cpus-per-task``) when launched by ``srun``, else the cores divided by the training processes.
    An explicit ``cpu_threads`` or ``OMP_NUM_THREADS`` wins."""
    import torch

    if cfg.cpu_threads:
        n = int(cfg.cpu_threads)
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    elif os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit() and os.environ.get("SLURM_PROCID"):
        n = max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))   # srun: one task per rank, its own CPUs
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        devices = cfg.trainer.devices
        procs = devices if isinstance(devices, int) and devices > 0 and cfg.trainer.accelerator == "cpu" else 1
        n = max(1, cores // procs)  # data workers mostly wait on the training step: they need no core of their own
    torch.set_num_threads(n)
    return n


def resolve_precision(trainer: dict) -> str | int:
    """``trainer.precision: auto``: ``bf16-mixed`` when training runs on a CUDA GPU that supports bf16
    (Ampere and newer), else ``32-true`` (CPU keeps fp32; older GPUs too: ``16-mixed`` is an explicit
    choice there). Any other value is returned as it is."""
    p = trainer.get("precision")
    if p != "auto":
        return p
    import torch

    acc = str(trainer.get("accelerator", "auto"))
    gpu = torch.cuda.is_available() and acc in ("auto", "gpu", "cuda")
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"


def check_device(cfg: DictConfig) -> None:
    """Refuse, with one line naming the key, the trainer settings that need a GPU when the run has none:
    Lightning would silently turn ``16-mixed`` into ``bf16-mixed`` on CPU, and torch's SyncBatchNorm fails
    on CPU tensors part-way into the first step. The ``cluster-cpu`` preset is the CPU override of
    ``cluster`` (docs/cluster.md)."""
    import torch

    t = cfg.trainer
    acc = str(t.accelerator)
    cuda = torch.cuda.is_available()
    hint = "(the cluster preset is for GPU nodes; on CPU nodes use the cluster-cpu preset, " \
           "experiments/slurm/train-cpu.sbatch)"
    if acc in ("gpu", "cuda") and not cuda:
        raise ConfigError(f"config key trainer.accelerator: {acc!r} but no CUDA GPU is visible on "
                          f"{socket.gethostname()} {hint}")
    if acc == "cpu" or (acc == "auto" and not cuda):
        if str(t.precision) in ("16-mixed", "16"):
            raise ConfigError(f"config key trainer.precision: {t.precision!r} (fp16 mixed precision) needs a GPU; "
                              f"on CPU use 32-true or bf16-mixed {hint}")
        if t.sync_batchnorm:
            raise ConfigError(f"config key trainer.sync_batchnorm: true needs GPUs (torch's SyncBatchNorm has no "
                              f"CPU kernel); on CPU set trainer.sync_batchnorm=false {hint}")


def make_loggers(cfg: DictConfig, run_dir: Path, wandb_id: str | None = None) -> list:
    from pytorch_lightning.loggers import WandbLogger

    from callbacks.run_state import HistoryCSVLogger

    loggers: list = []
    if cfg.logger.csv:
        loggers.append(HistoryCSVLogger(save_dir=str(run_dir), name="", version="csv"))
    if cfg.logger.wandb:
        if not os.environ.get("WANDB_SWEEP_ID"):                 # a W&B sweep agent's run reports online
            os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(WandbLogger(project=cfg.logger.project, entity=cfg.logger.entity,
                                   group=cfg.logger.group, tags=list(cfg.logger.tags),
                                   name=f"{cfg.stage}-{run_dir.name}", save_dir=str(run_dir),
                                   id=wandb_id, resume="allow" if wandb_id else None,
                                   config=OmegaConf.to_container(cfg, resolve=True)))
    return loggers


def resume_command(cfg: DictConfig, run_dir: Path) -> str:
    """The command that continues the run in ``run_dir``."""
    return shlex.join([sys.executable, "-m", "experiments.run", str(cfg.stage), str(run_dir / "config.yaml"),
                       f"resume={run_dir}"])


def _ending_of(trainer, guard) -> str:
    """How a fit that returned normally ended."""
    from pytorch_lightning.callbacks import Timer

    if guard.ending:
        return guard.ending
    if trainer.fast_dev_run:
        return "fast_dev_run"
    if trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step:
        return "max_steps"
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and (timer.time_remaining("train") or 0) <= 0:
        return "max_time"
    if trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs:
        return "max_epochs"
    return "stopped"   # early stopping or another callback


ENDINGS = {
    "max_epochs": "finished: trainer.max_epochs reached",
    "max_steps": "stopped: trainer.max_steps reached",
    "max_time": "stopped: trainer.max_time reached",
    "fast_dev_run": "finished: trainer.fast_dev_run",
    "stopped": "stopped by a callback (e.g. early stopping)",
    "sigint": "interrupted by Ctrl-C (SIGINT)",
    "sigterm": "terminated (SIGTERM)",
    "sigusr1": "stopped by SIGUSR1 (SLURM: preemption or time limit ahead)",
    "exception": "failed with an error",
}


def _requeue_slurm_job() -> str:
    job = _slurm_job_id()
    if not job:
        return "not under SLURM: nothing requeued"
    try:
        r = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return f"scontrol requeue {job} failed: {e}"
    return f"requeued SLURM job {job}" if r.returncode == 0 else \
        f"scontrol requeue {job} failed: {(r.stderr or r.stdout).strip()}"


def _build(cfg: DictConfig, run_dir: Path, summary: dict, rank0: bool, callbacks: list | None):
    """The stage's module and data, the callbacks and the Trainer of a run."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

    from callbacks.run_state import AtomicCheckpointIO, DataPosition, RunGuard
    from callbacks.throughput import Throughput
    from experiments.stages import get_builder

    parts = get_builder(cfg.stage)(cfg, run_dir)
    parts.module.channels_last = bool(cfg.perf.channels_last)    # lightning_modules.perf, on_fit_start
    parts.module.compile_nets = bool(cfg.perf.compile)
    ckpt_dir = str(run_dir / "checkpoints")
    monitor = cfg.checkpoint.monitor
    every = cfg.checkpoint.get("every_n_train_steps") or None
    # With a monitor, `last.ckpt` comes from a second, unmonitored callback that rewrites it after every
    # epoch (a monitored ModelCheckpoint rewrites `last` only when it saves a new best).
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, monitor=monitor, mode=cfg.checkpoint.mode,
                           save_top_k=cfg.checkpoint.save_top_k,
                           save_last=monitor is None, every_n_train_steps=None if monitor else every,
                           filename="best-{epoch:03d}-{step}" if monitor else "{epoch:03d}-{step}")
    guard = RunGuard(run_dir / "checkpoints" / "last.ckpt",
                     on_first_step=lambda: _point_latest(run_dir) if rank0 else None)
    cbs = [DataPosition(), guard, ckpt, Throughput(), *parts.callbacks, *(callbacks or [])]
    last = None
    if monitor is not None:
        last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                               enable_version_counter=False, every_n_train_steps=every)
        cbs.append(last)
    minutes = cfg.checkpoint.get("every_minutes")
    if minutes:   # a periodic last.ckpt by wall clock too (rank 0's clock decides, for every rank)
        from datetime import timedelta

        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                                   enable_version_counter=False,
                                   train_time_interval=timedelta(minutes=float(minutes))))
    loggers = make_loggers(cfg, run_dir, summary.get("wandb_id")) if not cfg.trainer.fast_dev_run else []
    if loggers:
        cbs.append(LearningRateMonitor(logging_interval="step"))
    plugins: list = [AtomicCheckpointIO()]
    try:   # SIGUSR1 is handled by RunGuard (save at a batch boundary, then requeue): not by Lightning
        from lightning_fabric.plugins.environments import SLURMEnvironment

        if SLURMEnvironment.detect():
            plugins.append(SLURMEnvironment(auto_requeue=False))
    except ImportError:
        pass
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs["precision"] = resolve_precision(trainer_kwargs)
    from datamodules.workers import loader_settings

    workers, pin = loader_settings(cfg.data)
    prec = trainer_kwargs["precision"]
    summary["resolved"] = {"precision": prec, "num_workers": workers, "pin_memory": pin}
    if rank0:
        print(f"[corrtrack] precision {prec}, {workers} data workers, pin_memory {pin}, "
              f"channels_last {bool(cfg.perf.channels_last)}, compile {bool(cfg.perf.compile)}")
    trainer = pl.Trainer(**trainer_kwargs, default_root_dir=str(run_dir), logger=loggers or False,
                         callbacks=cbs, plugins=plugins)
    for lg in loggers:
        if hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    return trainer, parts, guard, ckpt, last


def train(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """Run one training stage from a resolved config; returns the run folder. ``callbacks``: extra
    Lightning callbacks. A run stopped by a signal raises :class:`RunEnded` after saving everything."""
    import pytorch_lightning as pl

    from corrtrack import checkpoints

    check_device(cfg)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    set_cpu_threads(cfg)
    plan = plan_run(cfg)
    run_dir = plan.run_dir
    if plan.resume_from is not None:   # a wrong file is one line here, not a traceback from inside Lightning
        checkpoints.load(plan.resume_from, accept=(cfg.stage,), what="resume")
    rank0 = _global_rank() == 0
    fresh = rank0 and not run_dir.exists()    # a folder this invocation creates (and may discard)
    summary = _read_summary(run_dir) if plan.continuing else {}
    if rank0:
        _remove_stale_checkpoints(plan)
        try:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"output_root: cannot create the run folder {run_dir} "
                              f"({e.strerror or e})") from None
        if not os.access(run_dir, os.W_OK):
            raise ConfigError(f"output_root: the run folder {run_dir} is not writable")
        saved = _saved_config(cfg)
        cfg_file = run_dir / "config.yaml"
        if cfg_file.is_file() and OmegaConf.load(cfg_file) != saved:
            cfg_file = run_dir / f"config-{len(summary.get('segments', [])) + 1}.yaml"   # a changed resume
        if not cfg_file.is_file():
            OmegaConf.save(saved, cfg_file)
        segments = list(summary.get("segments", []))
        segments.append({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "config": cfg_file.name,
                         "resumed_from": str(plan.resume_from) if plan.resume_from else None,
                         "host": socket.gethostname(), "pid": os.getpid()})
        summary.update({"stage": str(cfg.stage), "run_dir": str(run_dir), "status": "running",
                        "slurm_job_id": _slurm_job_id(), "segments": segments,
                        "wandb_id": summary.get("wandb_id") or f"{cfg.stage}-{run_dir.name}-{os.getpid()}",
                        "resume_command": resume_command(cfg, run_dir)})
        _write_summary(run_dir, summary)

    try:
        trainer, parts, guard, ckpt, last = _build(cfg, run_dir, summary, rank0, callbacks)
    except BaseException:
        if fresh:
            _discard_unstarted(run_dir)      # failed before training: nothing to keep or resume
        raise

    handoff = {"CORRTRACK_RUN_DIR": str(run_dir),
               "CORRTRACK_RESUME_CKPT": str(plan.resume_from) if plan.resume_from else ""}
    before = {k: os.environ.get(k) for k in handoff}
    os.environ.update(handoff)                # for the processes Lightning starts for the other ranks
    error: BaseException | None = None
    try:
        trainer.fit(parts.module, datamodule=parts.datamodule,
                    ckpt_path=str(plan.resume_from) if plan.resume_from else None)
        ending = _ending_of(trainer, guard)
    except SystemExit as e:                  # Lightning: sys.exit(1) after Ctrl-C; SIGTERMException
        ending = guard.ending or ("sigint" if e.code == 1 else "sigterm")
        error = e
    except BaseException as e:
        ending, error = guard.ending or "exception", e
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    if rank0 and trainer.is_global_zero:
        if ending == "exception" and guard.batches_this_fit == 0 and fresh:
            _discard_unstarted(run_dir)      # failed before training: nothing to keep or resume
        else:
            _finish(cfg, run_dir, summary, trainer, ckpt, last, ending, error)
    if ending == "exception" and error is not None:
        raise error
    if ending in EXIT_SIGNAL:
        raise RunEnded(ending, run_dir)
    return run_dir


def _remove_stale_checkpoints(plan: RunPlan) -> None:
    """A continued run: remove the earlier attempts' checkpoints its resumed state no longer tracks
    (``callbacks.run_state.stale_checkpoints``), so they neither pile up nor are resumed from later."""
    if not plan.continuing or plan.resume_from is None:
        return
    from callbacks.run_state import stale_checkpoints

    for old in stale_checkpoints(plan.run_dir, plan.resume_from):
        old.unlink(missing_ok=True)
        print(f"[corrtrack] removed {old} (an earlier attempt's checkpoint, older than "
              f"{plan.resume_from.name})", file=sys.stderr)


def _discard_unstarted(run_dir: Path) -> None:
    """Remove the folder this invocation created for a run that failed before its first step, if it holds
    nothing but what the run itself wrote at start-up (config, summary, empty logger folders)."""
    import shutil

    ours = {"config.yaml", "summary.json", "checkpoints", "csv", "wandb", "figures", "hparams.yaml"}
    entries = list(run_dir.iterdir()) if run_dir.is_dir() else []
    if all(p.name in ours for p in entries) and not any((run_dir / "checkpoints").glob("*.ckpt")):
        shutil.rmtree(run_dir, ignore_errors=True)


class RunEnded(Exception):
    """A run stopped by a signal (its checkpoint and summary written); ``main`` exits with its status."""

    def __init__(self, ending: str, run_dir: Path) -> None:
        super().__init__(ending)
        self.ending, self.run_dir = ending, run_dir


def _finish(cfg: DictConfig, run_dir: Path, summary: dict, trainer, ckpt, last, ending: str,
            error: BaseException | None) -> None:
    """summary.json and the printed report of a run that ended (rank 0)."""
    from corrtrack.cli import one_line

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
               if getattr(v, "numel", lambda: 1)() == 1}
    last_path = run_dir / "checkpoints" / "last.ckpt"
    # the job is requeued last: SLURM ends this job (SIGTERM) as soon as it is requeued
    requeue = ("requested" if _slurm_job_id() else "not under SLURM: nothing requeued") \
        if ending == "sigusr1" else None
    summary.update({
        "status": "finished" if ending in ("max_epochs", "fast_dev_run", "stopped") else "stopped",
        "ending": ending, "ending_text": ENDINGS.get(ending, ending),
        "error": one_line(error) if ending == "exception" and error is not None else None,
        "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
        "best_checkpoint": (ckpt.best_model_path or None) if cfg.checkpoint.monitor else None,
        "last_checkpoint": str(last_path) if last_path.is_file() else None,
        "global_step": int(trainer.global_step), "epochs": int(trainer.current_epoch),
        "final_metrics": metrics, "requeue": requeue})
    if summary.get("segments"):
        summary["segments"][-1].update({"ended": summary["ended"], "ending": ending,
                                        "global_step": int(trainer.global_step), "requeue": requeue})
    _write_summary(run_dir, summary)
    out = sys.stdout if ending not in ("exception", "sigint", "sigterm") else sys.stderr
    print(f"\n[corrtrack] {cfg.stage} run {ENDINGS.get(ending, ending)} at step {trainer.global_step}: "
          f"{run_dir}", file=out)
    print(f"[corrtrack]   config      {run_dir / 'config.yaml'}", file=out)
    print(f"[corrtrack]   checkpoints {run_dir / 'checkpoints'}", file=out)
    if cfg.logger.csv and not cfg.trainer.fast_dev_run:
        print(f"[corrtrack]   metrics     {run_dir / 'csv' / 'metrics.csv'}", file=out)
    for k in sorted(metrics):
        print(f"[corrtrack]   {k:32s} {metrics[k]:.4f}", file=out)
    if summary["last_checkpoint"] and ending not in ("max_epochs", "fast_dev_run"):
        print(f"[corrtrack] resume with: {summary['resume_command']}", file=out)
    if requeue == "requested":
        out.flush()
        summary["requeue"] = f"{_requeue_slurm_job()} at {time.strftime('%Y-%m-%d %H:%M:%S')}"
        if summary.get("segments"):
            summary["segments"][-1]["requeue"] = summary["requeue"]
        print(f"[corrtrack]   {summary['requeue']}", file=out, flush=True)
        _write_summary(run_dir, summary)
    elif requeue:
        print(f"[corrtrack]   {requeue}", file=out)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.run",
        description="Train a corrtrack stage: STAGE [PRESET ...] [key=value ...]",
        epilog=f"stages: {', '.join(available_stages())}")
    parser.add_argument("stage", help="siamese | refine | pose | finetune")
    parser.add_argument("items", nargs="*", help="presets (no '=') and key=value overrides")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also CORRTRACK_DEBUG=1)")
    args = parser.parse_args(argv)
    presets = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    try:
        cfg = load_config(args.stage, presets, overrides)
    except ConfigError as e:
        if args.debug:
            raise
        print(f"config error: {e}", file=sys.stderr)
        if args.stage in available_stages() and str(e).startswith("unknown preset"):
            print(f"presets for '{args.stage}': {', '.join(available_presets(args.stage))}", file=sys.stderr)
        return 2
    if args.print_config:
        print(OmegaConf.to_yaml(cfg))
        return 0
    try:
        train(cfg)
    except RunEnded as e:
        return EXIT_SIGNAL.get(e.ending, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
