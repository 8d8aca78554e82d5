"""Evaluator speed on a generated set: ``python -m corrtrack.evaluation.bench``.

    python -m corrtrack.evaluation.bench [--sequences 40 --frames 60 --out DIR] [--poseval DIR]

Generates a random GT / prediction set (``randomsets``, both formats mixed), times the evaluation in
process and as a subprocess of the CLI (Python start-up included, which is what a user waits for), and
prints sequences per second. With ``--poseval DIR`` (a folder holding the official ``poseval`` package,
Python 3 version) it also times ``python -m poseval.evaluate`` on the same files and compares its AP,
MOTA, precision and recall with ours.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _run_cli(gt: str, pred: str, out_json: str) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "corrtrack.evaluate", "--gt", gt, "--pred", pred, "--quiet",
                        "--out", out_json], capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"corrtrack.evaluate failed:\n{r.stderr}")
    return dt


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m corrtrack.evaluation.bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--sequences", type=int, default=40)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fmt", choices=("mixed", "2017", "2018"), default="mixed")
    p.add_argument("--out", help="folder for the generated set (default: a temporary folder, removed)")
    p.add_argument("--repeat", type=int, default=3, help="CLI runs (best and median are reported)")
    p.add_argument("--poseval", metavar="DIR",
                   help="folder holding the official poseval package: time it too")
    args = p.parse_args(argv)

    from corrtrack.evaluation import evaluate, load_folder_checked
    from corrtrack.evaluation.randomsets import write_random_set

    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-eval-")
        out = tmp.name
    os.makedirs(out, exist_ok=True)
    t = time.perf_counter()
    gt_dir, pred_dir = write_random_set(out, n_sequences=args.sequences, n_frames=args.frames, seed=args.seed,
                                        fmt=args.fmt)
    t_gen = time.perf_counter() - t
    n = args.sequences
    t = time.perf_counter()
    gt, pred = load_folder_checked(gt_dir, "GT"), load_folder_checked(pred_dir, "prediction")
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    m = evaluate(gt, pred)
    t_eval = time.perf_counter() - t
    n_gt = sum(s.num_persons for s in gt.values())
    n_pr = sum(s.num_persons for s in pred.values())
    print(f"set: {n} sequences x {args.frames} frames ({n * args.frames} frames, {m.num_frames} labeled; "
          f"{n_gt} GT and {n_pr} predicted persons), {args.fmt} formats, generated in {t_gen:.1f} s "
          f"into {out}")
    print(f"in process: load {t_load:.3f} s + evaluate {t_eval:.3f} s = {t_load + t_eval:.3f} s "
          f"-> {n / (t_load + t_eval):.1f} sequences/s")
    out_json = os.path.join(out, "metrics.json")
    times = [_run_cli(gt_dir, pred_dir, out_json) for _ in range(max(1, args.repeat))]
    best, med = min(times), statistics.median(times)
    print(f"CLI (python -m corrtrack.evaluate, start-up included): best {best:.3f} s, median {med:.3f} s "
          f"of {len(times)} -> {n / med:.1f} sequences/s")
    with open(out_json) as f:
        ours = json.load(f)
    print(f"AP total {ours['ap']['total']:.2f}, MOTA total {ours['mota']['total']:.2f}")
    if args.poseval:
        ref_out = os.path.join(out, "poseval_out")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([args.poseval, os.environ.get("PYTHONPATH", "")]))
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "poseval.evaluate", "-g", gt_dir, "-p", pred_dir + os.sep,
                            "-e", "-t", "-o", ref_out], capture_output=True, text=True, env=env)
        t_ref = time.perf_counter() - t
        if r.returncode:
            print(f"poseval failed ({r.returncode}):\n{r.stderr[-2000:]}")
            return 1
        diff = _compare(ours, ref_out)
        print(f"poseval: {t_ref:.2f} s -> {n / t_ref:.2f} sequences/s; speed-up {t_ref / med:.1f}x "
              "(median CLI run)"
              + ("" if diff is None else f"; max |difference| of AP, MOTA, precision, recall: {diff:.4f}"))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
