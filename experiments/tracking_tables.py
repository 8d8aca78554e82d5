"""The analogues of the paper's Tables 2 and 3 on PoseTrack-format videos, from given (or the shipped)
weights:

- Table 2: every association cue (OKS, DIS optical flow, re-ID, correspondences) on the same candidates,
  for each kind of candidates (GT boxes, detections, GT poses without ids): IDSW, MOTA, mAP, HOTA;
- Table 3: the correspondence cue with detections, recovery on / off x joint threshold: mAP, MOTA.

Each (candidates, recovery) setting runs the networks once (``corrtrack.tracking.precompute_video``); the
cues and joint thresholds only re-run the tracker and the evaluation.

    python -m experiments.tracking_tables --posetrack-root data/synth/hard-seed0/posetrack --out DIR
        [--pose-ckpt CKPT] [--corr-ckpt CKPT] [--reid-ckpt CKPT] [--cues CUE ...] [--max-videos N]
        [--max-frames N] [key=value ...]

``--cues corr`` fills Table 2 with the correspondence cue alone (the other cues do not depend on the
correspondence weights, so comparing two correspondence nets needs only their rows).

Writes ``DIR/tables.json`` (every number, the settings and checkpoints) and ``DIR/tables.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from corrtrack.cli import InputError, entry_point
from corrtrack.tracking.candidates import video_detections
from corrtrack.tracking.config import PRESETS, TrackingConfig
from corrtrack.tracking.models import load_models
from corrtrack.tracking.pipeline import CUE_TITLES, evaluate_cues, format_table
from corrtrack.tracking.precompute import precompute_video
from corrtrack.tracking.tracker import track
from corrtrack.tracking.video import load_videos

CUES = ("oks", "flow", "reid", "corr")
BOXES = ("gt", "detections", "gt-poses")
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def _precompute(videos, config, models, root, split, cues):
    caches = {}
    for v in videos:
        det = None
        if config.boxes == "detections":
            det = video_detections(v.name, None, root, split, config.detection_min_score)
        caches[v.name] = precompute_video(v, config, models, cues=list(cues), detections=det, progress=True)
    return caches


def _evaluate(videos, caches, config, cue, models):
    preds = {v.name: track(caches[v.name], config, cue, models).to_sequence() for v in videos}
    return evaluate_cues(videos, {cue: preds}, hota=True)[cue]


def tables(root: str, split: str, config: TrackingConfig, pose_ckpt=None, corr_ckpt=None, reid_ckpt=None,
           boxes=BOXES, thresholds=THRESHOLDS, max_videos: int | None = None, partial: Path | None = None,
           max_frames: int | None = None, cues=CUES) -> dict:
    """Both tables' numbers (Table 2 for ``cues``; Table 3 is the corr cue's); with ``partial``, the numbers
    so far are written there (JSON) after each setting, so a long run that is stopped keeps what it
    finished. ``max_frames``: each video cut to its first frames (evaluated against the same frames of
    the GT)."""
    videos = load_videos(root, split, max_videos)
    if max_frames is not None:
        videos = [v.head(max_frames) for v in videos]
    cues = [c for c in CUES if c in cues]
    computed = [c for c in CUES if c in cues or c == "corr"]              # Table 3 needs the corr cue
    models, skipped = load_models(config.replace(boxes="gt"), computed, pose_ckpt, corr_ckpt, reid_ckpt)
    if skipped:
        raise InputError("; ".join(f"{k}: {m}" for k, m in skipped.items()))
    out: dict = {"posetrack_root": str(root), "split": split, "videos": [v.name for v in videos],
                 "max_frames": max_frames,
                 "config": config.to_dict(), "table2": {}, "table3": {}, "seconds": {}}
    det_caches = None
    for b in boxes:
        cfg = config.replace(boxes=b)
        t0 = time.perf_counter()
        caches = _precompute(videos, cfg, models, root, split, computed)
        out["table2"][b] = {c: _evaluate(videos, caches, cfg, c, models) for c in cues}
        out["seconds"][f"table2/{b}"] = round(time.perf_counter() - t0, 1)
        _write_partial(partial, out)
        if b == "detections":
            det_caches = caches
    for recovery in (True, False):
        cfg = config.replace(boxes="detections", recovery=recovery)
        t0 = time.perf_counter()
        caches = det_caches if (recovery and det_caches is not None and config.recovery) else \
            _precompute(videos, cfg, models, root, split, ["corr"])
        out["table3"]["on" if recovery else "off"] = {
            str(t): _evaluate(videos, caches, cfg.replace(joint_threshold=t), "corr", models) for t in thresholds}
        out["seconds"][f"table3/recovery-{'on' if recovery else 'off'}"] = round(time.perf_counter() - t0, 1)
        _write_partial(partial, out)
    return out


def _write_partial(path: Path | None, res: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=2, default=float))


def markdown(res: dict) -> str:
    lines = [f"Videos: {len(res['videos'])} of {res['posetrack_root']} ({res['split']}); joint threshold "
             f"{res['config']['joint_threshold']}, tau_corr {res['config']['tau_corr']}, recovery "
             f"{'on' if res['config']['recovery'] else 'off'} (not with GT poses).", ""]
    lines += ["Table 2 analogue (IDSW, MOTA, mAP, HOTA):", "",
              "| candidates | cue | IDSW | MOTA | mAP | HOTA |", "|---|---|---|---|---|---|"]
    for b, rows in res["table2"].items():
        for c, r in rows.items():
            lines.append(f"| {b} | {CUE_TITLES.get(c, c)} | {r['idsw']} | {r['mota']:.1f} | {r['map']:.1f} | "
                         f"{r['hota']:.1f} |")
    ths = list(next(iter(res["table3"].values())).keys()) if res["table3"] else []
    lines += ["", "Table 3 analogue (correspondence cue, detections; mAP / MOTA by joint threshold):", "",
              "| recovery | " + " | ".join(ths) + " |", "|---|" + "---|" * len(ths)]
    for rec, rows in res["table3"].items():
        lines.append(f"| {rec} | " + " | ".join(f"{rows[t]['map']:.1f} / {rows[t]['mota']:.1f}" for t in ths) + " |")
    return "\n".join(lines) + "\n"


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.tracking_tables", description=__doc__.split("\n\n")[0])
    p.add_argument("--posetrack-root", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--out", required=True)
    p.add_argument("--pose-ckpt")
    p.add_argument("--corr-ckpt")
    p.add_argument("--reid-ckpt")
    p.add_argument("--boxes", nargs="+", default=list(BOXES), choices=BOXES)
    p.add_argument("--cues", nargs="+", default=list(CUES), choices=CUES, help="Table 2's cues (default: all)")
    p.add_argument("--thresholds", nargs="+", type=float, default=list(THRESHOLDS))
    p.add_argument("--max-videos", type=int)
    p.add_argument("--max-frames", type=int, help="only the first N frames of each video")
    p.add_argument("--preset", choices=list(PRESETS), default="paper",
                   help="tracker settings before the overrides (corrtrack.tracking.config.PRESETS)")
    p.add_argument("--debug", action="store_true")
    p.add_argument("overrides", nargs="*", help="tracking config key=value")
    args = p.parse_args(argv)
    config = TrackingConfig.from_overrides(args.overrides, TrackingConfig.preset(args.preset))
    res = tables(args.posetrack_root, args.split, config, args.pose_ckpt, args.corr_ckpt, args.reid_ckpt,
                 boxes=args.boxes, thresholds=args.thresholds, max_videos=args.max_videos,
                 partial=Path(args.out) / "tables.partial.json", max_frames=args.max_frames, cues=args.cues)
    res["checkpoints"] = {"pose": args.pose_ckpt, "corr": args.corr_ckpt, "reid": args.reid_ckpt}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.json").write_text(json.dumps(res, indent=2, default=float))
    text = markdown(res)
    (out / "tables.md").write_text(text)
    print(text)
    for b, rows in res["table2"].items():
        print(format_table(rows, f"boxes={b}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
