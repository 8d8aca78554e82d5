"""Evaluator speed on a generated set: ``python -m corrtrack.evaluation.bench``.

    python -m corrtrack.evaluation.bench [--sequences 40 --frames 60 --out DIR] [--poseval DIR]

Generates a random GT / prediction set (``randomsets``, both formats mixed) and times the evaluation three
ways: in memory on already-loaded sequences, as the training callback runs it (``evaluate(..., hota=True)``)
and without keypoint HOTA (the numbers poseval computes); and as a subprocess of the CLI (Python start-up
and JSON parsing included, which is what a user waits for). With ``--poseval DIR`` (a folder holding the
official ``poseval`` package, Python 3 version) it also times ``python -m poseval.evaluate`` on the same
files once, compares its AP, MOTA, precision and recall with ours and prints the speed-ups. Times are CPU
seconds (user + system, of this process or of the subprocess) and wall seconds; on a shared machine the CPU
times are the comparable ones.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd: list[str], env: dict | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, CPU s, result) of one subprocess."""
    c, t = _child_cpu(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t, _child_cpu() - c, r


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(wall s, CPU s, result) of the fastest of ``repeat`` calls (by CPU time)."""
    best = (math.inf, math.inf, None)
    for _ in range(max(1, repeat)):
        c, t = time.process_time(), time.perf_counter()
        res = fn()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if cpu < best[1]:
            best = (wall, cpu, res)
    return best


def _compare(ours: dict, ref_dir: str) -> float | None:
    try:
        with open(os.path.join(ref_dir, "total_AP_metrics.json")) as f:
            ap = json.load(f)
        with open(os.path.join(ref_dir, "total_MOT_metrics.json")) as f:
            mot = json.load(f)
    except (OSError, ValueError):
        return None
    worst = 0.0
    pairs = (("ap", ap["ap"]), ("mota", mot["mota"]), ("precision", mot["pre"]), ("recall", mot["rec"]))
    for key, ref in pairs:
        for v, r in zip(ours[key].values(), ref):
            v = math.nan if v is None else v
            if math.isnan(v) != math.isnan(r):
                return math.inf
            if not math.isnan(v):
                worst = max(worst, abs(v - r))
    return worst


def _in_process(gt_dir: str, pred_dir: str, n: int, frames: int, fmt: str, repeat: int
                ) -> dict[str, tuple]:
    """Time loading and the in-memory evaluation (with and without HOTA); prints one line each."""
    from corrtrack.evaluation import evaluate, load_folder_checked

    t = {"load": _timed(lambda: (load_folder_checked(gt_dir, "GT"),
                                 load_folder_checked(pred_dir, "prediction")), 1)}
    gt, pred = t["load"][2]
    t["eval"] = _timed(lambda: evaluate(gt, pred), repeat)
    t["eval_hota"] = _timed(lambda: evaluate(gt, pred, hota=True), repeat)
    n_gt = sum(s.num_persons for s in gt.values())
    n_pr = sum(s.num_persons for s in pred.values())
    print(f"set: {n} sequences x {frames} frames ({n * frames} frames, {t['eval'][2].num_frames} labeled; "
          f"{n_gt} GT and {n_pr} predicted persons), {fmt} formats")
    for key, what in (("load", "load the files"), ("eval", "evaluate (AP, MOT)"),
                      ("eval_hota", "evaluate (AP, MOT, HOTA: as the training callback)")):
        wall, cpu, _ = t[key]
        print(f"in process, {what}: {cpu:.3f} s CPU, {wall:.3f} s wall -> {n / max(cpu, 1e-9):.1f} "
              "sequences/s")
    return t


def _poseval(args: argparse.Namespace, gt_dir: str, pred_dir: str, out: str, ours: dict,
             t: dict[str, tuple]) -> int:
    """Run the official poseval once on the same files; print its time, the speed-ups and the largest
    difference of AP, MOTA, precision and recall."""
    ref_out = os.path.join(out, "poseval_out")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([args.poseval, os.environ.get("PYTHONPATH", "")]))
    wall, cpu, r = _run([sys.executable, "-m", "poseval.evaluate", "-g", gt_dir, "-p", pred_dir + os.sep,
                         "-e", "-t", "-o", ref_out], env)
    if r.returncode:
        print(f"poseval failed ({r.returncode}):\n{r.stderr[-2000:]}")
        return 1
    n = args.sequences
    diff = _compare(ours, ref_out)
    print(f"poseval (python -m poseval.evaluate, once): {cpu:.2f} s CPU, {wall:.2f} s wall -> "
          f"{n / cpu:.2f} sequences/s" + ("" if diff is None else
                                         f"; max |difference| of AP, MOTA, precision, recall: {diff:.4f}"))
    print("speed-up over poseval, CPU time (wall time):")
    for key, what in (("eval_hota", "in memory, as the training callback (AP, MOT, HOTA)"),
                      ("eval", "in memory (AP, MOT)"), ("cli", "CLI, start-up and file parsing included")):
        print(f"  {what}: {cpu / t[key][1]:.1f}x ({wall / t[key][0]:.1f}x)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m corrtrack.evaluation.bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--sequences", type=int, default=40)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fmt", choices=("mixed", "2017", "2018"), default="mixed")
    p.add_argument("--out", help="folder for the generated set (default: a temporary folder, removed)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of the CLI and of the in-memory evaluation (the fastest is reported; the CLI's "
                        "median too); poseval runs once")
    p.add_argument("--poseval", metavar="DIR",
                   help="folder holding the official poseval package: time it too")
    args = p.parse_args(argv)

    from corrtrack.evaluation.randomsets import write_random_set

    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-eval-")
        out = tmp.name
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    gt_dir, pred_dir = write_random_set(out, n_sequences=args.sequences, n_frames=args.frames, seed=args.seed,
                                        fmt=args.fmt)
    print(f"generated in {time.perf_counter() - t0:.1f} s into {out}")
    n = args.sequences
    t = _in_process(gt_dir, pred_dir, n, args.frames, args.fmt, args.repeat)
    out_json = os.path.join(out, "metrics.json")
    runs = []
    for _ in range(max(1, args.repeat)):
        wall, cpu, r = _run([sys.executable, "-m", "corrtrack.evaluate", "--gt", gt_dir, "--pred", pred_dir,
                             "--quiet", "--out", out_json])
        if r.returncode:
            raise SystemExit(f"corrtrack.evaluate failed:\n{r.stderr}")
        runs.append((wall, cpu))
    t["cli"] = min(runs, key=lambda x: x[1])
    med = statistics.median(w for w, _ in runs)
    print(f"CLI (python -m corrtrack.evaluate, start-up included): best {t['cli'][1]:.3f} s CPU, "
          f"{t['cli'][0]:.3f} s wall; median wall {med:.3f} s of {len(runs)} -> "
          f"{n / t['cli'][1]:.1f} sequences/s")
    with open(out_json) as f:
        ours = json.load(f)
    print(f"AP total {ours['ap']['total']:.2f}, MOTA total {ours['mota']['total']:.2f}")
    rc = _poseval(args, gt_dir, pred_dir, out, ours, t) if args.poseval else 0
    if tmp is not None:
        tmp.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
