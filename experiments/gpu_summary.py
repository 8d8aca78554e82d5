"""Summary of an ``experiments/gpu_check.sh`` folder: ``summary.json`` and ``summary.md``.

    python -m experiments.gpu_summary OUT_DIR [--run RUN_DIR]

Reads ``env.json``, ``tt_*.json`` (``python -m corrtrack.bench train-throughput --out``), ``loader.json``
(the pair pipeline alone), ``steps.tsv`` (status and seconds of each step) and the end-to-end run's
``summary.json`` (``perf/samples_per_s`` of the ``Throughput`` callback). The loader keeps up when the
pipeline alone delivers at least the pairs/s of the training step on in-memory batches and the end-to-end
run reaches at least 90 % of them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summarise(out_dir: Path, run_dir: Path | None = None) -> dict:
    out_dir = Path(out_dir)
    rows = []
    for f in sorted(out_dir.glob("tt_*.json")):
        for r in _read(f) or []:
            rows.append({"file": f.name, **{k: r.get(k) for k in (
                "stage", "unit", "device_name", "precision", "channels_last", "compile", "batch_size",
                "samples_per_s", "first_step_s", "train_gflops_per_sample", "achieved_tflops", "peak_tflops",
                "mfu", "max_memory_gib")}, "input_size": r.get("config", {}).get("input_size")})
    steps = []
    tsv = out_dir / "steps.tsv"
    if tsv.is_file():
        for line in tsv.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                steps.append({"step": parts[0], "status": parts[1], "seconds": int(parts[2])})
    loader = _read(out_dir / "loader.json")
    e2e = None
    if run_dir is not None:
        s = _read(Path(run_dir) / "summary.json") or {}
        m = s.get("final_metrics") or {}
        if "perf/samples_per_s" in m:
            e2e = {"pairs_per_s": m["perf/samples_per_s"], "steps": s.get("global_step"),
                   "resolved": s.get("resolved"), "max_memory_gib": m.get("perf/max_memory_gib")}
    # the in-memory reference: the Siamese row of the first file that has one (tt_bf16: the default precision)
    ref = next((r for r in rows if r["stage"] == "siamese" and r["file"] == "tt_bf16.json"), None)
    data = {"synthetic_pairs_per_s": ref["samples_per_s"] if ref else None,
            "loader_pairs_per_s": loader["pairs_per_s"] if loader else None,
            "loader_workers": loader["num_workers"] if loader else None,
            "end_to_end_pairs_per_s": e2e["pairs_per_s"] if e2e else None}
    verdict = None
    if data["synthetic_pairs_per_s"] and data["loader_pairs_per_s"]:
        keeps_up = data["loader_pairs_per_s"] >= data["synthetic_pairs_per_s"]
        if data["end_to_end_pairs_per_s"] is not None:
            keeps_up = keeps_up and data["end_to_end_pairs_per_s"] >= 0.9 * data["synthetic_pairs_per_s"]
        verdict = "loader keeps up" if keeps_up else "data-loader bound"
    data["verdict"] = verdict
    return {"env": _read(out_dir / "env.json"), "steps": steps, "throughput": rows, "data": data, "e2e": e2e}


def _fmt(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(s: dict) -> str:
    env = s.get("env") or {}
    lines = [f"# GPU check: {env.get('gpu') or 'CPU'} (torch {env.get('torch')}, CUDA {env.get('cuda')}, "
             f"{env.get('cores')} cores)", "",
             "Training FLOPs = 3 x forward of the trained nets + 1 x forward of frozen ones (refine's Siamese "
             "net); MFU against the dense bf16 peak.", "",
             "| file | stage | size | precision | layout | compile | batch | samples/s | GFLOP/sample | TFLOP/s "
             "| MFU | first step s | GiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["throughput"]:
        size = "x".join(str(v) for v in r["input_size"] or [])
        mfu = "n/a (no peak)" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
        lines.append(f"| {r['file']} | {r['stage']} | {size} | {r['precision']} | "
                     f"{'NHWC' if r['channels_last'] else 'NCHW'} | {'yes' if r['compile'] else 'no'} | "
                     f"{r['batch_size']} | {_fmt(r['samples_per_s'])} | {_fmt(r['train_gflops_per_sample'])} | "
                     f"{_fmt(r['achieved_tflops'], '.3g')} | {mfu} | {_fmt(r['first_step_s'])} | "
                     f"{_fmt(r['max_memory_gib'], '.2f')} |")
    d = s["data"]
    lines += ["", "| Siamese pairs/s | value |", "|---|---|",
              f"| training step on in-memory batches | {_fmt(d['synthetic_pairs_per_s'])} |",
              f"| data pipeline alone ({d['loader_workers']} workers) | {_fmt(d['loader_pairs_per_s'])} |",
              f"| end to end (Lightning, real loader) | {_fmt(d['end_to_end_pairs_per_s'])} |",
              f"| verdict | {d['verdict'] or 'n/a'} |", "",
              "| step | status | s |", "|---|---|---|"]
    lines += [f"| {st['step']} | {st['status']} | {st['seconds']} |" for st in s["steps"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.gpu_summary", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--run", default=None, help="the end-to-end run folder")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    if not out.is_dir():
        print(f"gpu_summary: {out}: no such folder", file=sys.stderr)
        return 2
    s = summarise(out, Path(args.run) if args.run else None)
    (out / "summary.json").write_text(json.dumps(s, indent=1))
    (out / "summary.md").write_text(markdown(s))
    print(f"wrote {out / 'summary.json'} and {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
