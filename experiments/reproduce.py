"""``make reproduce``: every result of the project regenerated from scratch, then written to docs/RESULTS.md.

    python -m experiments.reproduce [--scale full|smoke] [--run-id ID] [--out-root outputs/reproduce]
        [--synth-root data/synth] [--results FILE] [--assets DIR]
        [--force [STEP ...]] [--dry-run]
    python -m experiments.reproduce compare RUN_DIR_A RUN_DIR_B      (do two runs hold the same numbers?)

The steps are the project's own entry points, each run as a subprocess with its output in one folder,
``<out-root>/<run-id>/`` (default run id: the scale's name): the synthetic worlds (``corrtrack.synth``),
the four training stages with fixed seeds (``experiments.run``: pose fine-tuning from scratch, Siamese,
refinement, re-ID; the recipe of ``experiments/weights.sh``), the Table 2 / 3 analogues on held-out worlds
(``experiments.tracking_tables``), one rendered tracking run (``corrtrack.track --render``), the tracking
sweep (``experiments.sweep run`` over ``experiments/sweeps/tracking.yaml`` pointed at the trained
checkpoints) and the propagation benchmark (``corrtrack.bench propagation``). Then
``experiments.results_doc`` writes the results file from those outputs only.

A step whose outputs are there is skipped on a rerun (an interrupted training run is resumed in its
folder); a step that runs invalidates the finished steps that depend on it; ``--force STEP`` reruns a step
(``--force`` alone: every step). A run folder made with other settings is refused unless ``--force``.
Every step's command, wall time, commit and log (``logs/<step>.log``) are recorded in ``steps.json`` (a running
step's time once a minute, so that a resumed training run counts the time of its interrupted part).
docs/reproduce.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from corrtrack.cli import InputError, entry_point

REPO = Path(__file__).resolve().parents[1]
STAGES = ("finetune", "siamese", "refine", "reid")


@dataclass(frozen=True)
class Scale:
    """What one scale trains and evaluates. ``train_world`` / ``eval_worlds`` are synthetic-world preset
    names with seeds; ``tracking`` are tracking-config overrides shared by every tracking step."""

    name: str
    description: str
    world: str                                   # synthetic world preset
    train_seed: int
    eval_seeds: tuple[int, ...]
    presets: tuple[str, ...]                     # training presets of every stage, applied in order
    train_overrides: tuple[str, ...]
    tracking: tuple[str, ...]
    tables_args: tuple[str, ...]
    track_args: tuple[str, ...]
    sweep_args: tuple[str, ...]
    sweep_grid: dict[str, list] | None           # None: the sweep file's own grid
    propagation_args: tuple[str, ...]


SCALES = {
    "full": Scale(
        "full", "the `cpu` presets on the `hard` world (seed 0), evaluated on the val videos of seeds 1 and 2",
        world="hard", train_seed=0, eval_seeds=(1, 2), presets=("cpu",),
        # as experiments/weights.sh: every stage its preset's full epoch count, whatever the machine's speed
        train_overrides=("trainer.max_time=null",),
        # the operating point of the CPU-trained weights, chosen on seed 0 (docs/tracking.md, Results)
        tracking=("--preset", "shipped"),
        tables_args=(), track_args=("--max-videos", "1"),
        sweep_args=("--max-videos", "2", "--max-frames", "30"), sweep_grid=None,
        propagation_args=("--input-size", "512")),
    "smoke": Scale(
        "smoke", "a check of the pipeline, not results: the `cpu` presets' networks trained for the `debug` "
        "presets' 3 steps per stage on the `tiny` world (seed 0), evaluated on the first frames of one val "
        "video of seed 1",
        # `cpu` first for its small networks (the default ones are the paper's: minutes per frame to track
        # on a CPU), then `debug` for the steps and the world
        world="tiny", train_seed=0, eval_seeds=(1,), presets=("cpu", "debug"),
        train_overrides=(),
        tracking=("tau_corr=0.005", "input_size=128"),
        tables_args=("--max-videos", "1", "--max-frames", "6"), track_args=("--max-videos", "1", "--max-frames", "8"),
        sweep_args=("--max-videos", "1", "--max-frames", "6"),
        sweep_grid={"tau_corr": [0.005, 0.3], "joint_threshold": [0.1, 0.3], "recovery": [True]},
        propagation_args=("--input-size", "128", "--max-pairs", "16")),
}


@dataclass
class Step:
    """One step: ``command`` (argv, run in the repository root) and ``done(run_dir) -> bool`` telling from
    its outputs whether it has finished; ``clear`` removes its outputs (``--force``, or a dependency
    that ran again); ``after``: the steps whose outputs it reads."""

    name: str
    command: list[str]
    done: Callable[[], bool]
    clear: Callable[[], None] = lambda: None
    after: tuple[str, ...] = ()
    prepare: Callable[[], None] | None = None
    resume: Callable[[], list[str] | None] = field(default=lambda: None)


# ------------------------------------------------------------------------------------------- the plan
def _s(path: Path | str) -> str:
    """A path as a command shows it: relative to the repository root (where the steps run) when inside it."""
    p = Path(path).absolute()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


def world_dir(synth_root: Path, preset: str, seed: int) -> Path:
    return synth_root / f"{preset}-seed{seed}"


def _world_done(root: Path, preset: str) -> bool:
    from corrtrack.synth import get_preset, read_marker
    from corrtrack.synth.world import stale_reasons

    m = read_marker(root)
    return m is not None and not stale_reasons(m, get_preset(preset))


def _trained(run: Path) -> bool:
    """A training run that ended by its schedule (epochs, steps or time), not by a signal or an error."""
    s = _summary(run)
    return s.get("status") == "finished" or s.get("ending") in ("max_steps", "max_time")


def _summary(run: Path) -> dict:
    try:
        return json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def _rmtree(path: Path) -> Callable[[], None]:
    return lambda: shutil.rmtree(path, ignore_errors=True)


def _train_steps(scale: Scale, run_dir: Path, synth_root: Path, py: str, run_id: str) -> list[Step]:
    common = [f"seed={scale.train_seed}", f"data.synth.seed={scale.train_seed}", f"data.synth.root={_s(synth_root)}",
              "data.coco_root=synth", "data.posetrack_root=synth", f"output_root={_s(run_dir / 'outputs')}",
              "cpu_threads=1", "trainer.enable_progress_bar=false", *scale.train_overrides]
    extra = {"finetune": ["model.init_ckpt=null"],           # from scratch (the cpu preset's own choice too)
             "siamese": ["track_eval.enabled=false"],        # the monitor needs the weights being made
             "refine": ["track_eval.enabled=false", f"model.siamese_ckpt={_s(run_dir / 'outputs' / 'siamese' / run_id)}"],
             "reid": []}
    steps = []
    for stage in STAGES:
        rd = run_dir / "outputs" / stage / run_id

        def resume(rd=rd, stage=stage):
            if (rd / "config.yaml").is_file() and not _trained(rd):
                return [py, "-m", "experiments.run", stage, _s(rd / "config.yaml"), f"resume={_s(rd)}"]
            return None

        steps.append(Step(f"train-{stage}",
                          [py, "-m", "experiments.run", stage, *scale.presets, *common, *extra[stage], f"run_id={run_id}"],
                          done=lambda rd=rd: _trained(rd), clear=_rmtree(rd),
                          after=(f"world-{scale.world}-seed{scale.train_seed}",) + (("train-siamese",)
                                                                                   if stage == "refine" else ()),
                          resume=resume))
    return steps


def _sweep_file(scale: Scale, out: Path, world: Path, ckpts: list[str]) -> None:
    """The shipped tracking sweep pointed at this run's checkpoints, world and cache (and the scale's grid)."""
    cfg = yaml.safe_load((REPO / "experiments" / "sweeps" / "tracking.yaml").read_text())
    cmd = [str(c) for c in cfg["command"]]
    cmd[cmd.index("--posetrack-root") + 1] = _s(world / "posetrack")
    cmd[cmd.index("--cache-dir") + 1] = _s(out / "cache")
    i = cmd.index("${args_no_hyphens}")
    fixed = [t for t in scale.tracking if not t.startswith("tau_corr=")]      # tau_corr is swept
    if "--preset" in cmd and "--preset" in fixed:
        fixed[fixed.index("--preset"):fixed.index("--preset") + 2] = []
    cfg["command"] = cmd[:i] + ckpts + list(scale.sweep_args) + fixed + cmd[i:]
    if scale.sweep_grid is not None:                              # the file's cue(s), the scale's grid
        cfg["parameters"] = {**{k: {"values": v} for k, v in scale.sweep_grid.items()},
                             "cue": cfg["parameters"]["cue"]}
    cfg["description"] = f"{cfg.get('description', '')} (make reproduce, {scale.name} scale)"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tracking.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def sweep_dir(run_dir: Path) -> Path | None:
    """The newest finished sweep folder of a run (``sweep/tracking/<timestamp>/`` holding summary.csv)."""
    done = sorted((run_dir / "sweep" / "tracking").glob("*/summary.csv"))
    return done[-1].parent if done else None


def plan(scale: Scale, run_dir: Path, synth_root: Path, py: str | None = None) -> list[Step]:
    """The steps of a run, in order (paths absolute)."""
    py = py or _s(sys.executable)
    run_id = f"repro-{run_dir.name}"
    train_world = world_dir(synth_root, scale.world, scale.train_seed)
    steps = []
    for seed in (scale.train_seed, *scale.eval_seeds):
        w = world_dir(synth_root, scale.world, seed)
        steps.append(Step(f"world-{scale.world}-seed{seed}", [py, "-m", "corrtrack.synth", "--out", _s(w), "--preset",
                                                              scale.world, "--seed", str(seed), "--quiet"],
                          done=lambda w=w: _world_done(w, scale.world)))
    steps += _train_steps(scale, run_dir, synth_root, py, run_id)
    outs = run_dir / "outputs"
    ckpts = ["--pose-ckpt", _s(outs / "finetune" / run_id), "--corr-ckpt", _s(outs / "refine" / run_id)]
    reid = ["--reid-ckpt", _s(outs / "reid" / run_id)]
    trained = ("train-finetune", "train-refine", "train-reid")
    for seed in scale.eval_seeds:
        w, out = world_dir(synth_root, scale.world, seed), run_dir / "tables" / f"{scale.world}-seed{seed}"
        steps.append(Step(f"tables-{scale.world}-seed{seed}",
                          [py, "-m", "experiments.tracking_tables", "--posetrack-root", _s(w / "posetrack"), "--out",
                           _s(out), *ckpts, *reid, *scale.tables_args, *scale.tracking],
                          done=lambda out=out: (out / "tables.json").is_file(), clear=_rmtree(out),
                          after=trained + (f"world-{scale.world}-seed{seed}",)))
    w, out = world_dir(synth_root, scale.world, scale.eval_seeds[0]), run_dir / "track"
    steps.append(Step("track", [py, "-m", "corrtrack.track", "--posetrack-root", _s(w / "posetrack"), "--out",
                                _s(out), "--cue", "all", "--boxes", "detections", "--render", "--quiet", *ckpts, *reid,
                                *scale.track_args, *scale.tracking],
                      done=lambda: (out / "results" / "table.json").is_file() and any((out / "render").glob("*.mp4")),
                      clear=_rmtree(out), after=trained + (f"world-{scale.world}-seed{scale.eval_seeds[0]}",)))
    sw = run_dir / "sweep"
    steps.append(Step("sweep", [py, "-m", "experiments.sweep", "run", _s(sw / "tracking.yaml"), "--out-root", _s(sw),
                                "--quiet"],
                      done=lambda: sweep_dir(run_dir) is not None, clear=_rmtree(sw / "tracking"),
                      after=trained + (f"world-{scale.world}-seed{scale.train_seed}",),
                      prepare=lambda: _sweep_file(scale, sw, train_world, ckpts)))
    prop = run_dir / "propagation" / "propagation.json"
    steps.append(Step("propagation", [py, "-m", "corrtrack.bench", "propagation", "--data", _s(train_world), "--ckpt",
                                      _s(outs / "refine" / run_id), "--out", _s(prop), *scale.propagation_args],
                      done=prop.is_file, clear=_rmtree(prop.parent),
                      after=("train-refine", f"world-{scale.world}-seed{scale.train_seed}")))
    return steps


# ----------------------------------------------------------------------------------------- running it
def commit() -> str:
    """The checkout's commit (short hash), with ``+dirty`` when tracked files differ from it."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=60).stdout.strip()
    try:
        head = git("rev-parse", "--short=10", "HEAD") or "unknown"
        return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for k, v in {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "WANDB_MODE": "offline",
                 "WANDB_SILENT": "true"}.items():
        env.setdefault(k, v)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _check_plan(run_dir: Path, scale: Scale, steps: list[Step], force: bool) -> None:
    """A run folder is reused only for the same scale and commands (else --force)."""
    f = run_dir / "plan.json"
    new = {"scale": scale.name, "steps": {s.name: s.command for s in steps}}
    if f.is_file() and not force:
        old = json.loads(f.read_text())
        if old != new:
            diff = sorted(k for k in set(old.get("steps", {})) | set(new["steps"])
                          if old.get("steps", {}).get(k) != new["steps"].get(k))
            raise InputError(f"{run_dir}: made with other settings (scale {old.get('scale')}; steps differing: "
                             f"{', '.join(diff) or 'none'}); pass another --run-id, or --force to redo every step")
    run_dir.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(new, indent=1))


def run(scale: Scale, run_dir: Path, synth_root: Path, force: list[str] | None = None,
        say: Callable[[str], None] = print, jobs: int = 1) -> dict[str, Any]:
    """Run (or skip) every step; returns steps.json's content. ``force``: step names to redo ([] = all).
    ``jobs``: how many steps may run at once; a step starts when every step it reads (``after``) has
    finished, in plan order among the ready ones (``jobs`` 1: one after the other in plan order). Each
    step runs the same command either way, so the results do not depend on ``jobs``."""
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: must be at least 1")
    steps = plan(scale, run_dir.absolute(), synth_root.absolute())
    names = [s.name for s in steps]
    unknown = sorted(set(force or []) - set(names))
    if unknown:
        raise InputError(f"--force {' '.join(unknown)}: no such step (steps: {', '.join(names)})")
    forced = set(names) if force == [] else set(force or [])
    _check_plan(run_dir, scale, steps, force == [])
    record_file = run_dir / "steps.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    (run_dir / "logs").mkdir(exist_ok=True)
    index = {s.name: k for k, s in enumerate(steps, 1)}
    ran: set[str] = set()
    finished: set[str] = set()                 # skipped or ran this time: the steps after them may start
    waiting = list(steps)
    running: dict[Any, tuple[Step, dict[str, Any]]] = {}
    failed: list[str] = []

    def save() -> None:
        record_file.write_text(json.dumps({n: record[n] for n in names if n in record}, indent=1))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while waiting or running:
            for step in list(waiting):
                if failed or len(running) >= jobs:
                    break
                if not all(d in finished for d in step.after if d in index):
                    continue
                waiting.remove(step)
                k = index[step.name]
                stale = step.name in forced or bool(ran & set(step.after))
                if step.done() and not stale:
                    say(f"[{k}/{len(steps)}] {step.name}: done earlier, skipped")
                    if record.get(step.name, {}).get("status") != "ran":
                        record[step.name] = {"status": "found", "seconds": None, "command": step.command}
                    finished.add(step.name)
                    continue
                cmd, prev = _launch(step, stale, record)
                say(f"[{k}/{len(steps)}] {step.name}: {shlex.join(cmd)}")
                save()
                running[pool.submit(_run_step, step.name, cmd, run_dir)] = (step, prev)
            if not running:
                break                                   # a failure left steps that can no longer start
            done_now, _ = wait(running, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
            _heartbeat(record, [s.name for s, _ in running.values()])
            save()
            for fut in sorted(done_now, key=lambda f: index[running[f][0].name]):
                step, prev = running.pop(fut)
                entry = fut.result()
                if prev.get("seconds"):                                 # a resumed run: count every part
                    entry["seconds"] = round(entry["seconds"] + prev["seconds"], 1)
                    entry["intervals"] = prev.get("intervals", []) + entry["intervals"]
                record[step.name] = entry
                save()
                k = index[step.name]
                if entry["returncode"] != 0 or not step.done():
                    what = "failed" if entry["returncode"] else "ended without its outputs"
                    failed.append(f"step {step.name} {what} (exit status {entry['returncode']}); its log: "
                                  f"{run_dir / 'logs' / (step.name + '.log')}; rerun the same command to resume")
                    say(f"[{k}/{len(steps)}] {step.name}: {what}")
                    continue
                ran.add(step.name)
                finished.add(step.name)
                say(f"[{k}/{len(steps)}] {step.name}: finished in {_duration(entry['seconds'])}")
    save()
    if failed:
        raise StepFailed("; ".join(failed))
    return record


def _launch(step: Step, stale: bool, record: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Make a step ready to run (stale outputs cleared, inputs prepared, an interrupted training run
    resumed) and mark it running in ``record``; returns its command and the record of its earlier parts
    (a resumed training run counts their time, an interrupted part included; {} when there are none)."""
    if stale and not step.name.startswith("world-"):
        step.clear()
    if step.prepare is not None:
        step.prepare()
    resumed = step.resume()
    cmd = resumed or step.command
    if step.name.startswith("world-") and stale:
        cmd = cmd + ["--force"]
    prev = record.get(step.name, {}) if resumed else {}
    now = round(time.time(), 1)
    record[step.name] = {"status": "running", "seconds": prev.get("seconds") or 0.0, "command": cmd,
                         "intervals": prev.get("intervals", []) + [[now, now]]}
    return cmd, prev


HEARTBEAT_S = 60.0     # how often a running step's record is brought up to date (what a kill can lose)


def _heartbeat(record: dict[str, Any], names: list[str]) -> None:
    """Extend the open time interval of each running step to now, so that a run killed mid-step (session
    end, power cut) still has the time its steps ran, to within ``HEARTBEAT_S``."""
    now = round(time.time(), 1)
    for n in names:
        e = record[n]
        if e.get("status") == "running":
            a, b = e["intervals"][-1]
            e["seconds"] = round(e["seconds"] + now - b, 1)
            e["intervals"][-1] = [a, now]


class StepFailed(RuntimeError):
    """A step's command failed (its log is named in the message)."""


def _run_step(name: str, cmd: list[str], run_dir: Path) -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started, code = time.strftime("%Y-%m-%d %H:%M:%S"), commit()
    t0, wall0 = time.perf_counter(), time.time()
    with open(run_dir / "logs" / f"{name}.log", "a") as log:
        log.write(f"\n=== {started}: {shlex.join(cmd)}\n")
        log.flush()
        rc = subprocess.run(cmd, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT).returncode
    return {"status": "ran", "seconds": round(time.perf_counter() - t0, 1), "returncode": rc, "command": cmd,
            "commit": code, "started": started, "load_avg_1min": load,
            "intervals": [[round(wall0, 1), round(time.time(), 1)]]}     # when it ran (epoch s): the run's wall time


def _duration(s: float | None) -> str:
    if s is None:
        return "n/a"
    s = int(round(s))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


# ----------------------------------------------------------------------------------- comparing two runs
def numbers(run_dir: Path) -> dict[str, float]:
    """Every result number of a run, flat (``tables/<world>/table2/<boxes>/<cue>/<metric>``, ``sweep/<point>/
    <metric>``, ``propagation/<row>/<column>``, ``train/<stage>/<metric>``), for :func:`compare`."""
    out: dict[str, float] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            out[prefix] = float(obj)

    for f in sorted(run_dir.glob("tables/*/tables.json")):
        t = json.loads(f.read_text())
        walk(f"tables/{f.parent.name}", {"table2": t["table2"], "table3": t["table3"]})
    sd = sweep_dir(run_dir)
    if sd is not None:
        import csv

        for row in csv.DictReader(open(sd / "summary.csv")):
            for k, v in row.items():                                # results, not run times
                if k.startswith("track/") and not k.endswith("seconds") and v not in ("", None):
                    out[f"sweep/{row['point']}/{k}"] = float(v)
    prop = run_dir / "propagation" / "propagation.json"
    if prop.is_file():
        walk("propagation", json.loads(prop.read_text())["table"])
    for s in sorted(run_dir.glob("outputs/*/*/summary.json")):
        if s.parent.is_symlink():                                    # <stage>/latest
            continue
        fm = json.loads(s.read_text()).get("final_metrics") or {}
        walk(f"train/{s.parent.parent.name}", {k: v for k, v in fm.items() if k.startswith(("val/", "train/"))})
    return out


def compare(a: Path, b: Path, rel_tol: float = 0.0) -> list[str]:
    """The numbers that differ between two runs (or exist in one only); empty when they all agree."""
    na, nb = numbers(a), numbers(b)
    diffs = [f"{k}: {na.get(k)} vs {nb.get(k)}" for k in sorted(set(na) | set(nb))
             if k not in na or k not in nb or not math.isclose(na[k], nb[k], rel_tol=rel_tol, abs_tol=0.0)
             and not (math.isnan(na[k]) and math.isnan(nb[k]))]
    return diffs


# ---------------------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--run-id", default=None, help="run folder name (default: the scale's name)")
    p.add_argument("--out-root", default="outputs/reproduce")
    p.add_argument("--synth-root", default=os.environ.get("CORRTRACK_SYNTH_ROOT", "data/synth"),
                   help="where the synthetic worlds are (generated when missing)")
    p.add_argument("--results", default=None,
                   help="the results file written at the end (default: docs/RESULTS.md at full scale, "
                        "RUN_DIR/RESULTS.md at smoke scale, whose numbers are a pipeline check only)")
    p.add_argument("--assets", default=None,
                   help="its pictures (default: docs/results/reproduce at full scale, RUN_DIR/assets at smoke)")
    p.add_argument("--force", nargs="*", metavar="STEP", default=None,
                   help="redo these steps (and those that depend on them); alone: every step")
    p.add_argument("--jobs", type=int, default=1,
                   help="steps run at once when they do not read each other's outputs (default 1; each step "
                        "uses one CPU thread, so up to the core count pays)")
    p.add_argument("--dry-run", action="store_true", help="list the steps and their commands, run nothing")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:
        if len([a for a in argv[1:] if not a.startswith("--")]) != 2:
            raise InputError("usage: python -m experiments.reproduce compare RUN_DIR_A RUN_DIR_B")
        a, b = (Path(x) for x in argv[1:] if not x.startswith("--"))
        for d in (a, b):
            if not (d / "steps.json").is_file():
                raise InputError(f"{d}: not a reproduce run folder (no steps.json)")
        diffs = compare(a, b)
        print("\n".join(diffs) if diffs else f"the {len(numbers(a))} numbers of {a} and {b} are equal")
        return 1 if diffs else 0
    args = _parser().parse_args(argv)
    scale = SCALES[args.scale]
    run_dir = Path(args.out_root) / (args.run_id or scale.name)
    if args.dry_run:
        for k, s in enumerate(plan(scale, run_dir.absolute(), Path(args.synth_root).absolute()), 1):
            print(f"[{k}] {s.name}: {shlex.join(s.command)}")
        return 0
    from experiments.results_doc import write_results

    t0 = time.perf_counter()
    try:
        run(scale, run_dir, Path(args.synth_root), args.force, jobs=args.jobs)
    except StepFailed as e:
        print(e, file=sys.stderr)
        return 1
    command = "python -m experiments.reproduce " + shlex.join(argv)
    full = scale.name == "full"
    results = Path(args.results or ("docs/RESULTS.md" if full else run_dir / "RESULTS.md"))
    assets = Path(args.assets or ("docs/results/reproduce" if full else run_dir / "assets"))
    path = write_results(run_dir, scale, results, assets, command)
    print(f"wrote {path} (this invocation: {_duration(time.perf_counter() - t0)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
