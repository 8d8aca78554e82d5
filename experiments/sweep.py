"""W&B sweeps over the files in ``experiments/sweeps/``, online or with the project's own offline runner.

    python -m experiments.sweep launch SWEEP [--agents N] [--count N] [--seed S] [--offline]   (make sweep)
    python -m experiments.sweep run SWEEP [--agents N] [--count N] [--seed S] [--out-root DIR]  (offline)
    python -m experiments.sweep agent SWEEP_ID [--count N]          (one online agent: `wandb agent`)
    python -m experiments.sweep track [corrtrack.track's arguments] [key=value ...]   (one tracking point)
    python -m experiments.sweep check [SWEEP ...]                   (validate the sweep files)

SWEEP is a file or a name in ``experiments/sweeps/`` (``tracking``, ``siamese``, ``refine``). ``launch``
runs online (``wandb sweep`` + N ``wandb agent`` processes, each pinned to one GPU with
CUDA_VISIBLE_DEVICES when there are several) when W&B credentials are configured (``WANDB_API_KEY`` or
a ``.netrc`` entry for the W&B host; nothing is sent to check them) and ``WANDB_MODE`` is not
offline/disabled; otherwise it runs ``run``. W&B's own local sweep engine needs the ``sweeps`` package,
which pins numpy<2, so ``run`` expands the file itself: grid, or random with a seed (``bayes`` is sampled
at random offline, with a line saying so), N parallel workers, every point an offline W&B run and one
row of ``summary.csv`` / ``summary.md``, a heat map of MOTA and mAP over tau_corr x joint_threshold and
the best point, under ``outputs/sweeps/<name>/<timestamp>/`` (never overwritten). docs/sweeps.md.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import math
import multiprocessing as mp
import netrc
import os
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from corrtrack.cli import InputError, entry_point

REPO = Path(__file__).resolve().parents[1]
SWEEPS_DIR = REPO / "experiments" / "sweeps"
METHODS = ("grid", "random", "bayes")
GOALS = ("maximize", "minimize")
TOP_KEYS = {"program", "command", "method", "metric", "parameters", "name", "description", "project", "entity",
            "early_terminate", "run_cap", "job", "image_uri", "controller"}
DISTRIBUTIONS = {"constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform",
                 "log_uniform_values", "q_log_uniform", "q_log_uniform_values", "inv_log_uniform",
                 "inv_log_uniform_values", "normal", "q_normal", "log_normal", "q_log_normal", "beta"}
PARAM_KEYS = {"value", "values", "distribution", "min", "max", "mu", "sigma", "q", "a", "b", "probabilities",
              "parameters"}
MACROS = {"${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_json}",
          "${args_json_file}", "${args_no_boolean_flags}"}
OFFLINE_DISTRIBUTIONS = {"constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform_values",
                         "q_log_uniform_values", "normal", "log_uniform"}


# ------------------------------------------------------------------------------------ the sweep files
def sweep_path(sweep: str | Path) -> Path:
    """A sweep file by path or by name in experiments/sweeps/."""
    p = Path(sweep)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    named = SWEEPS_DIR / f"{sweep}.yaml"
    if named.is_file():
        return named
    names = ", ".join(sorted(x.stem for x in SWEEPS_DIR.glob("*.yaml")))
    raise InputError(f"sweep {sweep}: no such file, and not a name in {SWEEPS_DIR} ({names})")


def load_sweep(sweep: str | Path) -> dict[str, Any]:
    """The sweep configuration of a file, checked (:func:`format_errors`); errors name the file."""
    path = sweep_path(sweep)
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    errors = format_errors(cfg)
    if errors:
        raise InputError(f"{path}: {errors[0]}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    cfg.setdefault("name", path.stem)
    return cfg


def format_errors(cfg: Any) -> list[str]:
    """Checks of W&B's documented sweep format (top-level keys, method, metric, parameter specs, command
    macros). The installed ``wandb`` has no offline validator (its schema lives in the ``sweeps``
    package), so these are the project's own."""
    if not isinstance(cfg, dict):
        return ["a sweep configuration is a mapping"]
    errs = [f"unknown top-level key '{k}'" for k in cfg if k not in TOP_KEYS]
    if cfg.get("method") not in METHODS:
        errs.append(f"method: must be one of {', '.join(METHODS)} (got {cfg.get('method')!r})")
    metric = cfg.get("metric")
    if metric is not None:
        if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
            errs.append("metric: needs a 'name'")
        elif metric.get("goal", "minimize") not in GOALS:
            errs.append(f"metric.goal: must be maximize or minimize (got {metric.get('goal')!r})")
    elif cfg.get("method") == "bayes":
        errs.append("metric: bayes needs a metric")
    params = cfg.get("parameters")
    if not isinstance(params, dict) or not params:
        errs.append("parameters: a non-empty mapping of parameter name -> spec")
    else:
        for name, spec in params.items():
            errs += [f"parameters.{name}: {e}" for e in _param_errors(spec, cfg.get("method"))]
    command = cfg.get("command")
    if command is not None:
        if not isinstance(command, list) or not all(isinstance(c, (str, int, float)) for c in command):
            errs.append("command: a list of strings")
        else:
            errs += [f"command: unknown macro {c}" for c in command
                     if isinstance(c, str) and c.startswith("${") and c not in MACROS]
    if "program" in cfg and not isinstance(cfg["program"], str):
        errs.append("program: a path")
    if "run_cap" in cfg and (not isinstance(cfg["run_cap"], int) or cfg["run_cap"] < 1):
        errs.append("run_cap: a positive integer")
    return errs


def _param_errors(spec: Any, method: str | None) -> list[str]:
    if not isinstance(spec, dict):
        return ["a mapping (value, values, or distribution with its bounds)"]
    errs = [f"unknown key '{k}'" for k in spec if k not in PARAM_KEYS]
    dist = spec.get("distribution")
    if dist is not None and dist not in DISTRIBUTIONS:
        errs.append(f"unknown distribution '{dist}'")
    if "values" in spec and (not isinstance(spec["values"], list) or not spec["values"]):
        errs.append("values: a non-empty list")
    kinds = [k for k in ("value", "values") if k in spec] + (["range"] if "min" in spec or "max" in spec else [])
    if len(kinds) != 1 and "parameters" not in spec and dist not in ("normal", "q_normal", "log_normal",
                                                                       "q_log_normal", "beta"):
        errs.append("exactly one of value, values, or min/max (a distribution)")
    if ("min" in spec) != ("max" in spec):
        errs.append("min and max go together")
    elif "min" in spec and not (isinstance(spec["min"], (int, float)) and isinstance(spec["max"], (int, float))
                                and spec["min"] < spec["max"]):
        errs.append("min < max, both numbers")
    if method == "grid" and ("min" in spec or dist not in (None, "constant", "categorical", "int_uniform")):
        errs.append("grid search needs value / values (or int_uniform)")
    if "probabilities" in spec and len(spec["probabilities"]) != len(spec.get("values", [])):
        errs.append("probabilities: one per value")
    return errs


# ---------------------------------------------------------------------------------------- expansion
def expand(cfg: dict[str, Any], count: int | None = None, seed: int = 0, say=print) -> list[dict[str, Any]]:
    """The points of a sweep: every combination for ``grid`` (the first ``count`` when given), else
    ``count`` (default ``run_cap``, else 10) random draws with ``seed``; ``bayes`` is drawn at random
    offline (one line says so)."""
    params = cfg["parameters"]
    if cfg["method"] == "grid":
        names = list(params)
        axes = [_grid_values(params[n]) for n in names]
        points = [dict(zip(names, combo)) for combo in itertools.product(*axes)]
        return points[:count] if count else points
    if cfg["method"] == "bayes":
        say(f"sweep {cfg.get('name')}: bayes search needs W&B's sweep service; offline the points are drawn "
            "at random from the same space")
    rng = random.Random(seed)
    n = count or int(cfg.get("run_cap") or 10)
    return [{name: _draw(spec, rng, name) for name, spec in params.items()} for _ in range(n)]


def _grid_values(spec: dict[str, Any]) -> list[Any]:
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    return list(range(int(spec["min"]), int(spec["max"]) + 1))           # int_uniform


def _draw(spec: dict[str, Any], rng: random.Random, name: str) -> Any:
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return rng.choices(spec["values"], weights=spec.get("probabilities"))[0]
    dist = spec.get("distribution") or ("int_uniform" if isinstance(spec["min"], int) and
                                        isinstance(spec["max"], int) else "uniform")
    lo, hi = spec.get("min"), spec.get("max")
    if dist == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if dist in ("uniform", "q_uniform"):
        v = rng.uniform(lo, hi)
    elif dist in ("log_uniform_values", "q_log_uniform_values"):
        v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    elif dist == "log_uniform":                                            # bounds are logs
        v = math.exp(rng.uniform(lo, hi))
    elif dist == "normal":
        v = rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0))
    else:
        raise InputError(f"parameters.{name}: distribution {dist} is not drawn by the offline runner "
                         f"(it draws {', '.join(sorted(OFFLINE_DISTRIBUTIONS))})")
    if "q" in spec:
        v = round(v / spec["q"]) * spec["q"]
    return float(f"{v:.6g}")


def command_for(cfg: dict[str, Any], params: dict[str, Any], python: str | None = None) -> list[str]:
    """The command line of one point: the file's ``command`` with W&B's macros filled (default command:
    ``${env} ${interpreter} ${program} ${args}``)."""
    command = cfg.get("command") or ["${env}", "${interpreter}", "${program}", "${args}"]
    out: list[str] = []
    for item in map(str, command):
        if item == "${env}":
            continue                                           # /usr/bin/env: the current environment
        if item == "${interpreter}":
            out.append(python or sys.executable)
        elif item == "${program}":
            out.append(str(cfg.get("program", "")))
        elif item == "${args_no_hyphens}":
            out += [f"{k}={_text(v)}" for k, v in params.items()]
        elif item in ("${args}", "${args_no_boolean_flags}"):
            out += [f"--{k}={_text(v)}" for k, v in params.items()]
        elif item == "${args_json}":
            out.append(json.dumps(params))
        else:
            out.append(item)
    return out


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "null" if v is None else str(v)


def swept_key_errors(cfg: dict[str, Any]) -> list[str]:
    """Every swept parameter must be a key of the entry point the command runs: a tracking config key (or
    ``cue``) for ``experiments.sweep track`` / ``corrtrack.track``, a key of the stage's config for
    ``experiments.run STAGE``; each point of the file (grid: all; random: a few draws) must load."""
    command = [str(c) for c in cfg.get("command") or []]
    points = expand(cfg, count=None if cfg["method"] == "grid" else 3, say=lambda _: None)
    errs: list[str] = []
    if "experiments.run" in command:
        from experiments.config import ConfigError, load_config

        i = command.index("experiments.run")
        fixed = [c for c in command[i + 1:] if not c.startswith("${")]
        stage, presets = fixed[0], [c for c in fixed[1:] if "=" not in c]
        overrides = [c for c in fixed[1:] if "=" in c]
        for p in points:
            try:
                load_config(stage, presets, overrides + [f"{k}={_text(v)}" for k, v in p.items()])
            except ConfigError as e:
                errs.append(f"{stage} {' '.join(presets)}: {e}")
    elif _is_tracking(command):
        from corrtrack.tracking.config import TrackingConfig, TrackingConfigError

        for p in points:
            try:
                TrackingConfig.from_dict(p)
            except TrackingConfigError as e:
                errs.append(str(e))
    else:
        errs.append("command: runs neither experiments.run nor corrtrack.track / experiments.sweep track")
    return sorted(set(errs))


def _is_tracking(command: list[str]) -> bool:
    return "corrtrack.track" in command or ("experiments.sweep" in command and "track" in command)


# ------------------------------------------------------------------------------------ one tracking point
def track_point(argv: list[str], wandb_mode: str | None = None, name: str | None = None,
                config: dict[str, Any] | None = None, wandb_dir: str | Path | None = None) -> dict[str, Any]:
    """``python -m corrtrack.track`` with ``argv`` inside a W&B run (``cue=X`` becomes ``--cue X``; without
    ``--out`` the output goes to ``outputs/sweeps/runs/<run id>``), its metrics logged as
    ``track/<cue>/{mota,map,idsw,hota}`` and ``track/{mota,map}`` (the cue tracked). Returns the metrics,
    or {"error": ...}. The W&B run's folder is ``wandb_dir`` (default: WANDB_DIR, else the current folder)."""
    import wandb

    from corrtrack.track import main as track_main

    argv = list(argv)
    cue = "corr"
    for a in [a for a in argv if a.startswith("cue=")]:
        argv.remove(a)
        cue = a.split("=", 1)[1]
    if "--cue" in argv:
        cue = argv[argv.index("--cue") + 1]
    else:
        argv += ["--cue", cue]
    run = wandb.init(mode=wandb_mode, project=os.environ.get("WANDB_PROJECT", "corrtrack-sweeps"), name=name,
                     config=config if config is not None else _overrides(argv), reinit="finish_previous",
                     dir=str(wandb_dir) if wandb_dir else os.environ.get("WANDB_DIR"))
    try:
        if "--out" not in argv:
            argv += ["--out", str(REPO / "outputs" / "sweeps" / "runs" / run.id)]
        out = Path(argv[argv.index("--out") + 1])
        rc = track_main(argv)
        table_file = out / "results" / "table.json"
        if rc != 0 or not table_file.is_file():
            return {"error": f"corrtrack.track exited with status {rc}"}
        summary = json.loads(table_file.read_text())
        row = summary.get("table", {}).get(cue, {})
        metrics = {f"track/{cue}/{k}": row.get(k) for k in ("mota", "map", "idsw", "hota", "assa")}
        metrics.update({"track/mota": row.get("mota"), "track/map": row.get("map"),
                        "track/seconds": summary.get("seconds")})
        run.log({k: v for k, v in metrics.items() if v is not None})
        return {**metrics, "cache": summary.get("cache"), "out": str(out), "wandb_run": run.id}
    finally:
        run.finish()


def _overrides(argv: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))


# ------------------------------------------------------------------------------------ the offline runner
def _run_point(job: dict[str, Any]) -> dict[str, Any]:
    """One point: in this process for a tracking point (no interpreter start-up; the nets' output comes
    from the cache), else the command as a subprocess with WANDB_MODE=offline. Output goes to the
    point's ``log.txt``."""
    d = Path(job["dir"])
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cmd = job["command"]
    row: dict[str, Any] = {}
    with open(d / "log.txt", "w") as log:
        log.write(shlex.join(cmd) + "\n")
        log.flush()
        if _is_tracking(cmd):
            i = cmd.index("track") + 1 if "experiments.sweep" in cmd else cmd.index("corrtrack.track") + 1
            argv = cmd[i:] + ["--out", str(d / "track"), "--quiet"]
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                try:
                    row = track_point(argv, "offline", job["name"], job["params"], wandb_dir=d)
                except Exception as e:                                     # one bad point, not the sweep
                    row = {"error": " ".join(f"{type(e).__name__}: {e}".split())}
        else:
            row = _train_point(cmd, d, log)
    return {**row, "seconds": time.perf_counter() - t0}


def _train_point(cmd: list[str], d: Path, log) -> dict[str, Any]:
    """A training point: ``experiments.run`` with ``output_root`` in the point's folder and W&B offline;
    its metrics are the run's final ones (W&B's summary: the last value logged)."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    env.pop("WANDB_SWEEP_ID", None)
    r = subprocess.run(cmd + [f"output_root={d / 'outputs'}"], stdout=log, stderr=subprocess.STDOUT, env=env,
                       cwd=REPO)
    summaries = sorted((d / "outputs").glob("*/*/summary.json"))
    if r.returncode != 0 or not summaries:
        return {"error": f"exit status {r.returncode} (see {d / 'log.txt'})"}
    s = json.loads(summaries[-1].read_text())
    return {**{k: v for k, v in (s.get("final_metrics") or {}).items() if k.startswith(("track/", "val/"))},
            "out": str(summaries[-1].parent)}


def _worker(index: int, gpu: str | None, jobs, results) -> None:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["WANDB_SILENT"] = "true"
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    while True:
        job = jobs.get()
        if job is None:
            return
        try:
            row = _run_point(job)
        except Exception as e:                                             # never lose a worker silently
            row = {"error": " ".join(f"{type(e).__name__}: {e}".split())}
        results.put((job["index"], index, row))


def _gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def phases(points: list[dict[str, Any]], tracking: bool) -> list[list[int]]:
    """The order points run in: for a tracking sweep, first one point per distinct precomputation
    setting (they run the networks and fill the cache), then one per setting and cue not covered yet
    (they add that cue's part on the stored candidates), then all the others (they read the cache). A
    training sweep is one phase."""
    if not tracking:
        return [list(range(len(points)))]
    from corrtrack.tracking.config import TrackingConfig

    pre = [tuple((k, str(p[k])) for k in sorted(p) if k in TrackingConfig.PRECOMPUTE_KEYS) for p in points]
    first, second, seen1, seen2 = [], [], set(), set()
    for i, p in enumerate(points):
        if pre[i] not in seen1:
            seen1.add(pre[i])
            seen2.add((pre[i], p.get("cue")))
            first.append(i)
        elif (pre[i], p.get("cue")) not in seen2:
            seen2.add((pre[i], p.get("cue")))
            second.append(i)
    rest = [i for i in range(len(points)) if i not in set(first) | set(second)]
    return [ph for ph in (first, second, rest) if ph]


def new_sweep_dir(out_root: str | Path, name: str) -> Path:
    """``<out_root>/<name>/<timestamp>/``, created here; an existing folder gets a suffix, never reused."""
    base = Path(out_root) / name
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in itertools.count():
        d = base / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def run_offline(sweep: str | Path, agents: int = 1, count: int | None = None, seed: int = 0,
                out_root: str | Path = "outputs/sweeps", progress: bool = True) -> Path:
    """Run every point of a sweep file here (see the module docstring); returns the sweep folder."""
    from tqdm import tqdm

    cfg = load_sweep(sweep)
    points = expand(cfg, count, seed)
    tracking = _is_tracking([str(c) for c in cfg.get("command") or []])
    out = new_sweep_dir(out_root, cfg["name"])
    width = len(str(len(points)))
    jobs = [{"index": i, "params": p, "name": f"{cfg['name']}-{out.name}-{i:0{width}d}",
             "dir": str(out / "points" / f"{i:0{width}d}"), "command": command_for(cfg, p)}
            for i, p in enumerate(points)]
    (out / "sweep.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (out / "points.json").write_text(json.dumps([{k: j[k] for k in ("index", "params", "command")} for j in jobs],
                                                indent=1))
    gpus = _gpus()
    agents = max(1, int(agents))
    print(f"sweep {cfg['name']} ({cfg['method']}): {len(points)} point(s), {agents} worker(s)"
          + (f" on GPUs {', '.join(gpus)}" if len(gpus) > 1 else "") + f" -> {out}")
    ctx = mp.get_context("spawn")
    job_q, res_q = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(w, gpus[w % len(gpus)] if len(gpus) > 1 else None, job_q, res_q),
                         daemon=True) for w in range(agents)]
    for p in procs:
        p.start()
    rows: dict[int, dict[str, Any]] = {}
    try:
        with tqdm(total=len(points), desc=f"sweep {cfg['name']}", unit="point", disable=not progress) as bar:
            for phase in phases(points, tracking):
                for i in phase:
                    job_q.put(jobs[i])
                for _ in phase:
                    i, worker, row = _next_result(res_q, procs)
                    rows[i] = {"point": i, "worker": worker, **row}
                    bar.update(1)
                    if "error" in row:
                        tqdm.write(f"point {i} failed: {row['error']}")
    finally:
        for _ in procs:
            job_q.put(None)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    write_summary(out, cfg, jobs, rows)
    return out


def _next_result(res_q, procs, poll_s: float = 5.0):
    import queue

    while True:
        try:
            return res_q.get(timeout=poll_s)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                raise RuntimeError("every sweep worker has stopped") from None


# -------------------------------------------------------------------------------------- the summary
def _metric_value(row: dict[str, Any], metric: str) -> float | None:
    v = row.get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else None


def write_summary(out: Path, cfg: dict[str, Any], jobs: list[dict], rows: dict[int, dict]) -> dict[str, Any]:
    """summary.csv / summary.md (one row per point), best.json, and heatmap.png when the sweep has
    tau_corr and joint_threshold."""
    metric = (cfg.get("metric") or {}).get("name", "track/mota")
    goal = (cfg.get("metric") or {}).get("goal", "maximize")
    names = list(cfg["parameters"])
    metric_cols = sorted({k for r in rows.values() for k in r if k.startswith(("track/", "val/"))},
                         key=lambda k: (k != metric, k))
    table = []
    for j in jobs:
        r = rows.get(j["index"], {"error": "not run"})
        table.append({"point": j["index"], **{n: j["params"][n] for n in names},
                      **{m: r.get(m) for m in metric_cols}, "seconds": round(r.get("seconds") or 0.0, 2),
                      "status": "ok" if "error" not in r else f"failed: {r['error']}", "folder": j["dir"]})
    cols = list(table[0]) if table else []
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(table)
    scored = [t for t in table if _metric_value(t, metric) is not None]
    best = (max if goal == "maximize" else min)(scored, key=lambda t: _metric_value(t, metric)) if scored else None
    md = [f"# Sweep {cfg['name']} ({cfg['method']}, {len(table)} points, metric {metric}, {goal})", ""]
    md += ["| " + " | ".join(c for c in cols if c != "folder") + " |", "|" + "---|" * (len(cols) - 1)]
    md += ["| " + " | ".join(_cell(t[c]) for c in cols if c != "folder") + " |" for t in table]
    if best is not None:
        md += ["", f"Best point: {best['point']} ({', '.join(f'{n}={_text(best[n])}' for n in names)}): "
                   f"{metric} = {_metric_value(best, metric):.2f}"]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    (out / "best.json").write_text(json.dumps(best, indent=2, default=str))
    heat = heatmap(out / "heatmap.png", table, names) if {"tau_corr", "joint_threshold"} <= set(names) else None
    print("\n".join(md[2:]))
    print(f"summary: {out / 'summary.csv'}, {out / 'summary.md'}" + (f"; heat map: {heat}" if heat else ""))
    return {"best": best, "table": table}


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.3g}"
    return "" if v is None else str(v)


def heatmap(path: Path, table: list[dict], names: list[str]) -> Path | None:
    """MOTA and mAP over tau_corr (rows) x joint_threshold (columns), one pair of panels per value of the
    other swept keys (e.g. recovery on / off); the best MOTA cell of each panel is outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mota_key = next((k for k in ("track/mota", "track/corr/mota") if any(k in t for t in table)), None)
    map_key = mota_key.replace("mota", "map") if mota_key else None
    if mota_key is None:
        return None
    others = [n for n in names if n not in ("tau_corr", "joint_threshold")]
    facets = sorted({tuple(_text(t[n]) for n in others) for t in table})
    taus = sorted({float(t["tau_corr"]) for t in table})
    jts = sorted({float(t["joint_threshold"]) for t in table})
    fig, axes = plt.subplots(len(facets), 2, figsize=(2.2 + 1.1 * len(jts) * 2, 0.9 + 0.75 * len(taus) * len(facets)),
                             squeeze=False)
    for fi, facet in enumerate(facets):
        rows = [t for t in table if tuple(_text(t[n]) for n in others) == facet]
        for ci, (key, title) in enumerate(((mota_key, "MOTA"), (map_key, "mAP"))):
            grid = np.full((len(taus), len(jts)), np.nan)
            for t in rows:
                v = _metric_value(t, key)
                if v is not None:
                    grid[taus.index(float(t["tau_corr"])), jts.index(float(t["joint_threshold"]))] = v
            ax = axes[fi][ci]
            im = ax.imshow(grid, cmap="viridis", aspect="auto")
            for (r, c), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if v < np.nanmean(grid) else "black")
            if ci == 0 and np.isfinite(grid).any():
                r, c = np.unravel_index(np.nanargmax(grid), grid.shape)
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="red", lw=2))
            ax.set_xticks(range(len(jts)), [f"{x:g}" for x in jts])
            ax.set_yticks(range(len(taus)), [f"{x:g}" for x in taus])
            ax.set_xlabel("joint_threshold")
            ax.set_ylabel("tau_corr")
            label = ", ".join(f"{n}={v}" for n, v in zip(others, facet))
            ax.set_title(f"{title}" + (f" ({label})" if label else ""), fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- online
def logged_in(env: dict[str, str] | None = None) -> bool:
    """Whether W&B credentials are configured, without any network access: WANDB_MODE is not
    offline / disabled / dryrun, and WANDB_API_KEY is set or the netrc file ($NETRC, else ~/.netrc) has
    an entry for the W&B host (WANDB_BASE_URL, default api.wandb.ai). Credentials are not verified."""
    env = dict(os.environ) if env is None else env
    if env.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun") or env.get("WANDB_DISABLED"):
        return False
    if env.get("WANDB_API_KEY"):
        return True
    host = urlparse(env.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(env.get("NETRC") or Path(env.get("HOME", str(Path.home()))) / ".netrc")
    try:
        return path.is_file() and netrc.netrc(str(path)).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def agent_commands(sweep_id: str, agents: int, count: int | None, gpus: list[str]) -> list[tuple[list[str], dict]]:
    """(command, extra environment) of each ``wandb agent`` process: agent i on GPU gpus[i % len] when
    there are several GPUs."""
    wandb_bin = str(Path(sys.executable).with_name("wandb"))
    cmd = [wandb_bin if Path(wandb_bin).exists() else "wandb", "agent", sweep_id] + (
        ["--count", str(count)] if count else [])
    return [(cmd, {"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} if len(gpus) > 1 else {}) for i in range(agents)]


def launch_online(sweep: str | Path, agents: int, count: int | None) -> int:
    """``wandb sweep`` (the file as it is) and N ``wandb agent`` processes in this shell; waits for them."""
    import wandb

    cfg = load_sweep(sweep)
    project = cfg.get("project") or os.environ.get("WANDB_PROJECT", "corrtrack-sweeps")
    sweep_id = wandb.sweep(sweep=cfg, project=project, entity=cfg.get("entity"))
    full = "/".join(x for x in (cfg.get("entity") or os.environ.get("WANDB_ENTITY"), project, sweep_id) if x)
    print(f"sweep {full}; more agents: python -m experiments.sweep agent {full}")
    procs = [subprocess.Popen(c, env={**os.environ, **e}, cwd=REPO)
             for c, e in agent_commands(full, agents, count, _gpus())]
    return max((p.wait() for p in procs), default=0)


# ------------------------------------------------------------------------------------------------- CLI
@entry_point
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["track"]:                     # corrtrack.track's own arguments follow
        row = track_point(argv[1:])
        return 0 if "error" not in row else 1
    p = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("launch", "online when logged in to W&B, else the offline runner (make sweep)"),
                        ("run", "the offline runner")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("sweep", help="a sweep file or a name in experiments/sweeps/")
        s.add_argument("--agents", type=int, default=1, help="parallel agents / workers (one per GPU if several)")
        s.add_argument("--count", type=int, default=None, help="points per agent online; all points offline "
                                                               "(grid: the first N; random: N draws)")
        s.add_argument("--seed", type=int, default=0, help="offline random draws")
        s.add_argument("--out-root", default="outputs/sweeps")
        s.add_argument("--offline", action="store_true", help="(launch) offline even when logged in")
        s.add_argument("--quiet", action="store_true", help="no progress bar")
        s.add_argument("--debug", action="store_true", help="show tracebacks")
    a = sub.add_parser("agent", help="one online agent of an existing sweep (e.g. a SLURM array task)")
    a.add_argument("sweep_id", help="ENTITY/PROJECT/SWEEP_ID")
    a.add_argument("--count", type=int, default=None)
    a.add_argument("--debug", action="store_true")
    c = sub.add_parser("check", help="validate sweep files (format and swept keys)")
    c.add_argument("sweeps", nargs="*", help="files or names (default: all of experiments/sweeps/)")
    c.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    if args.command == "check":
        return _check(args.sweeps or sorted(str(x) for x in SWEEPS_DIR.glob("*.yaml")))
    if args.command == "agent":
        [(cmd, _)] = agent_commands(args.sweep_id, 1, args.count, [])
        return subprocess.call(cmd, cwd=REPO)
    if args.agents < 1:
        raise InputError(f"--agents {args.agents}: must be >= 1")
    if args.command == "launch" and not args.offline and logged_in():
        return launch_online(args.sweep, args.agents, args.count)
    if args.command == "launch":
        print("W&B: not logged in (or WANDB_MODE offline): running the sweep offline with experiments/sweep.py")
    run_offline(args.sweep, args.agents, args.count, args.seed, args.out_root, progress=not args.quiet)
    return 0


def _check(sweeps: list[str]) -> int:
    bad = 0
    for s in sweeps:
        cfg = load_sweep(s)
        errs = swept_key_errors(cfg)
        n = len(expand(cfg, say=lambda _: None))
        print(f"{sweep_path(s)}: " + ("ok" if not errs else "; ".join(errs)) + f" ({cfg['method']}, {n} points)")
        bad += bool(errs)
    return 2 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
