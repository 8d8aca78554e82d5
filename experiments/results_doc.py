"""The results file of ``make reproduce`` (docs/RESULTS.md), written only from the files a run's steps wrote.

``write_results(run_dir, scale, path, assets, command)`` reads ``<run_dir>/steps.json`` (commands, wall
times, commits), the training runs' ``summary.json``, ``tables/<world>/tables.json`` (Tables 2 and 3),
the sweep's ``summary.csv`` / ``best.json`` / ``heatmap.png``, ``propagation/propagation.json`` (+ its
chart) and the rendered MP4s of ``track/render/`` (a few frames become PNGs); pictures are copied to
``assets``. Nothing in the file is typed: every number is formatted from those files.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from experiments.reproduce import STAGES, Scale, _duration, _s, commit, sweep_dir
from experiments.tracking_tables import markdown as tables_markdown

#: frames of the rendered video shown, as fractions of its length
FRAME_FRACTIONS = (0.25, 0.5, 0.75)
FRAME_WIDTH = 480
#: the sweep file's --boxes, in words
BOXES_TEXT = {"gt": "GT boxes", "detections": "the world's person detections", "gt-poses": "GT poses without ids"}


def _rel(p: Path, base: Path) -> str:
    return Path(os.path.relpath(p.absolute(), base.absolute())).as_posix()


def wall_seconds(steps: dict) -> float:
    """The run's wall time: how long at least one of its steps was running (the union of the steps' time
    intervals; steps may run side by side, ``--jobs``), or the sum of their times where a record has no
    intervals."""
    ran = [s for s in steps.values() if s.get("seconds") is not None]
    if not all(s.get("intervals") for s in ran):
        return sum(s["seconds"] for s in ran)
    total, end = 0.0, float("-inf")
    for a, b in sorted(tuple(i) for s in ran for i in s["intervals"]):
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total


def _header(run_dir: Path, scale: Scale, steps: dict, command: str, code: str) -> list[str]:
    secs = [s["seconds"] for s in steps.values() if s.get("seconds") is not None]
    wall = wall_seconds(steps)
    found = [n for n, s in steps.items() if s.get("seconds") is None]
    commits = sorted({s["commit"] for s in steps.values() if s.get("commit")})
    loads = [s["load_avg_1min"] for s in steps.values() if s.get("load_avg_1min") is not None]
    lines = [f"# Results of `make reproduce` ({scale.name} scale)", "",
             f"- **Wall time: {_duration(wall)}** for the {len(secs)} steps run ({_duration(sum(secs))} summed over "
             f"the steps), on a machine with "
             f"{os.cpu_count()} CPU cores (load average {min(loads):.1f}-{max(loads):.1f} when the steps started; "
             "other work shared the machine when it was above 0)" if loads else
             f"- **Wall time: {_duration(wall)}** ({os.cpu_count()} CPU cores)"]
    if found:
        lines.append(f"  (not counted: {', '.join(found)}, whose outputs were already there)")
    lines += [f"- Scale: {scale.description}.",
              f"- Commit: `{code}` (steps run at {', '.join(f'`{c}`' for c in commits) or 'n/a'}); run folder "
              f"`{_rel(run_dir, Path.cwd())}` (training run id `repro-{run_dir.name}`)",
              f"- Command: `{command}`; written {time.strftime('%Y-%m-%d %H:%M')}",
              "",
              "Every number and picture below was written by `python -m experiments.results_doc` from the files "
              "the steps wrote (docs/reproduce.md); nothing is typed by hand. A rerun of the command skips the "
              "finished steps and rewrites this file."]
    if scale.name != "full":
        lines += ["", f"**This is the `{scale.name}` scale: a check that the pipeline runs end to end, with "
                  "nets trained for a few steps; its numbers say nothing about the method. `make reproduce` "
                  "(full scale) writes the real results over this file.**"]
    return lines


def _steps_table(steps: dict) -> list[str]:
    lines = ["## Steps", "", "| step | wall time | status | commit | command |", "|---|---|---|---|---|"]
    for name, s in steps.items():
        status = {"ran": "ran", "found": "outputs already there"}.get(s.get("status"), s.get("status", ""))
        cmd = " ".join(str(c) for c in s.get("command", []))
        lines.append(f"| {name} | {_duration(s.get('seconds'))} | {status} | {s.get('commit', '')} | `{cmd}` |")
    return lines


def _training(run_dir: Path) -> list[str]:
    lines = ["## Training runs", "", "| stage | run folder | ending | epochs | steps | final validation metrics |",
             "|---|---|---|---|---|---|"]
    for stage in STAGES:
        for f in sorted((run_dir / "outputs" / stage).glob("*/summary.json")):
            if f.parent.is_symlink():                            # <stage>/latest: the same run again
                continue
            s = json.loads(f.read_text())
            val = ", ".join(f"{k} {v:.4g}" for k, v in sorted((s.get("final_metrics") or {}).items())
                            if k.startswith("val/") and isinstance(v, (int, float)))
            lines.append(f"| {stage} | `{_rel(f.parent, run_dir)}` | {s.get('ending_text', '')} | {s.get('epochs', '')} "
                         f"| {s.get('global_step', '')} | {val} |")
    return lines


def _tables(run_dir: Path) -> list[str]:
    lines = ["## Tables 2 and 3 analogues", "",
             "Produced by `python -m experiments.tracking_tables` (docs/tracking.md) with the checkpoints trained "
             "above, on worlds not trained on. IDSW counted per joint as poseval does; MOTA, mAP, HOTA in %."]
    for f in sorted(run_dir.glob("tables/*/tables.json")):
        res = json.loads(f.read_text())
        lines += ["", f"### {f.parent.name} (`{_rel(f, run_dir)}`)", "", tables_markdown(res).rstrip()]
    return lines


def _pivot(rows: list[dict], key: str) -> list[str]:
    taus = sorted({float(r["tau_corr"]) for r in rows})
    jts = sorted({float(r["joint_threshold"]) for r in rows})
    cell = {(float(r["tau_corr"]), float(r["joint_threshold"])): r.get(key) for r in rows}
    out = ["| tau_corr \\ joint threshold | " + " | ".join(f"{j:g}" for j in jts) + " |", "|---|" + "---|" * len(jts)]
    for t in taus:
        out.append(f"| {t:g} | " + " | ".join(_num(cell.get((t, j))) for j in jts) + " |")
    return out


def _num(v: Any) -> str:
    try:
        return f"{float(v):.1f}"
    except (TypeError, ValueError):
        return "n/a"


def _sweep(run_dir: Path, assets: Path, doc: Path) -> list[str]:
    sd = sweep_dir(run_dir)
    if sd is None:
        return ["## Tracking sweep", "", "(no finished sweep in the run)"]
    rows = list(csv.DictReader(open(sd / "summary.csv")))
    best = json.loads((sd / "best.json").read_text())
    sweep_file = sd.parent.parent / "tracking.yaml"
    cmd = [str(c) for c in (yaml.safe_load(sweep_file.read_text()) or {}).get("command", [])] \
        if sweep_file.is_file() else []
    boxes = cmd[cmd.index("--boxes") + 1] if "--boxes" in cmd[:-1] else "n/a"
    lines = ["## Tracking sweep (Table 3 picture)", "",
             f"`python -m experiments.sweep run` over `{_rel(sweep_file, run_dir)}` (the "
             f"shipped `experiments/sweeps/tracking.yaml` pointed at this run's checkpoints and training world's "
             f"val videos; candidates: {BOXES_TEXT.get(boxes, boxes)}; {len(rows)} points; docs/sweeps.md); "
             f"summary `{_rel(sd / 'summary.csv', run_dir)}`."]
    others = [k for k in ("recovery", "cue") if k in rows[0]]
    for facet in sorted({tuple(r[k] for k in others) for r in rows}):
        sub = [r for r in rows if tuple(r[k] for k in others) == facet]
        label = ", ".join(f"{k}={v}" for k, v in zip(others, facet))
        for key, title in (("track/mota", "MOTA"), ("track/map", "mAP")):
            lines += ["", f"{title} ({label}):", "", *_pivot(sub, key)]
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        lines += ["", f"{len(failed)} point(s) failed: " + "; ".join(f"{r['point']}: {r['status']}" for r in failed)]
    if best:
        params = ", ".join(f"{k}={best[k]}" for k in ("tau_corr", "joint_threshold", *others) if k in best)
        lines += ["", f"Best point by MOTA: {params}: MOTA {_num(best.get('track/mota'))}, "
                      f"mAP {_num(best.get('track/map'))}."]
    if (sd / "heatmap.png").is_file():
        shutil.copyfile(sd / "heatmap.png", assets / "sweep-heatmap.png")
        lines += ["", f"![sweep heat map]({_rel(assets / 'sweep-heatmap.png', doc.parent)})"]
    return lines


def _propagation(run_dir: Path, assets: Path, doc: Path) -> list[str]:
    from corrtrack.bench.propagation import markdown_table

    f = run_dir / "propagation" / "propagation.json"
    if not f.is_file():
        return ["## Propagation benchmark", "", "(not in the run)"]
    res = json.loads(f.read_text())
    lines = ["## Propagation benchmark", "",
             f"`python -m corrtrack.bench propagation` (docs/correspondence_training.md): GT poses of frame f-1 "
             f"moved to frame f, PCKh@0.5 in %, {res.get('pairs', 'n/a')} frame pairs of "
             f"`{_s(res['data']) if res.get('data') else 'n/a'}` at input size "
             f"{res.get('input_size')}; `{_rel(f, run_dir)}`.", "", markdown_table(res).rstrip()]
    chart = f.with_suffix(".png")
    if chart.is_file():
        shutil.copyfile(chart, assets / "propagation.png")
        lines += ["", f"![propagation chart]({_rel(assets / 'propagation.png', doc.parent)})"]
    return lines


def _frames(run_dir: Path, assets: Path, doc: Path) -> list[str]:
    import cv2

    videos = sorted((run_dir / "track" / "render").glob("*_corr.mp4")) or sorted((run_dir / "track" / "render").glob("*.mp4"))
    table = run_dir / "track" / "results" / "table.json"
    lines = ["## Rendered tracking", ""]
    if not videos:
        return lines + ["(no rendered video in the run)"]
    summary = json.loads(table.read_text()) if table.is_file() else {}
    lines.append(f"`python -m corrtrack.track --render` on {', '.join(summary.get('videos', []))} "
                 f"(boxes {summary.get('config', {}).get('boxes')}, every cue; `{_rel(table, run_dir)}`): "
                 "frames of the correspondence cue's MP4, skeletons coloured by track id, recovered poses outlined "
                 "in white.")
    if summary.get("table"):
        lines += ["", "| cue | IDSW | MOTA | mAP | HOTA |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {r['idsw']} | {r['mota']:.1f} | {r['map']:.1f} | {r['hota']:.1f} |"
                  for c, r in summary["table"].items()]
    cap = cv2.VideoCapture(str(videos[0]))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    pics = []
    for frac in FRAME_FRACTIONS:
        idx = min(max(int(n * frac), 0), max(n - 1, 0))
        cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
        ok, img = cap.read()
        if not ok:
            continue
        if img.shape[1] > FRAME_WIDTH:
            img = cv2.resize(img, (FRAME_WIDTH, round(img.shape[0] * FRAME_WIDTH / img.shape[1])),
                             interpolation=cv2.INTER_AREA)
        out = assets / f"frame-{videos[0].stem}-{idx:04d}.png"
        cv2.imwrite(str(out), img)
        pics.append(f"![frame {idx}]({_rel(out, doc.parent)})")
    cap.release()
    return lines + ["", " ".join(pics)]


def write_results(run_dir: Path, scale: Scale, path: Path, assets: Path, command: str) -> Path:
    """Write the results file ``path`` (and its pictures under ``assets``, replaced) from the run folder."""
    steps = json.loads((run_dir / "steps.json").read_text())
    code = commit()            # before the pictures are replaced: they are tracked files of the checkout
    assets.mkdir(parents=True, exist_ok=True)
    for old in assets.glob("*.png"):                             # the pictures of an earlier run
        old.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [_header(run_dir, scale, steps, command, code), _steps_table(steps), _training(run_dir),
             _tables(run_dir), _sweep(run_dir, assets, path), _propagation(run_dir, assets, path),
             _frames(run_dir, assets, path)]
    path.write_text("\n\n".join("\n".join(p) for p in parts) + "\n")
    return path
