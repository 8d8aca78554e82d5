"""Track people in PoseTrack-format videos with one association cue, or all of them (paper §5, Table 2).

    python -m corrtrack.track --posetrack-root ROOT [--split val] --out DIR --cue {oks,flow,reid,corr,all}
        [--boxes gt|detections|gt-poses] [--detections PATH] [--pose-ckpt CKPT] [--corr-ckpt CKPT]
        [--reid-ckpt CKPT] [--render] [--max-videos N] [--preset paper|release] [--cache-dir DIR] [key=value ...]

ROOT is the official PoseTrack layout (``ROOT/annotations/<split>/*.json``, image paths relative to ROOT);
for the synthetic world ROOT is ``<world>/posetrack``, whose ``detections/<split>/`` holds the default
detection files. ``DIR`` receives one PoseTrack 2018 JSON per video under the GT's file names (with
``--cue all``: ``DIR/<cue>/``), the evaluation (IDSW, MOTA, mAP, HOTA per cue) in ``DIR/results/``
and, with ``--render``, one MP4 per video (and cue) in ``DIR/render/``. ``key=value`` overrides the
tracking config (``experiments/configs/tracking.yaml``; docs/tracking.md). Bad input gets one line
naming the file (exit status 2; ``corrtrack.cli``), never a traceback (``--debug`` or CORRTRACK_DEBUG=1
shows it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from corrtrack.cli import entry_point


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m corrtrack.track", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="key=value: any tracking config key, e.g. tau_corr=0.3 joint_threshold=0.3 "
                                       "recovery=false solver=hungarian merge=true (docs/tracking.md)")
    p.add_argument("--posetrack-root", required=True, metavar="ROOT",
                   help="PoseTrack layout: ROOT/annotations/<split>/*.json (synthetic world: <world>/posetrack)")
    p.add_argument("--split", default="val", help="annotation split folder (default: val)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--cue", required=True, choices=["oks", "flow", "reid", "corr", "all"],
                   help="association cue; 'all' tracks with every cue on the same candidates")
    p.add_argument("--boxes", choices=["gt", "detections", "gt-poses"], default=None,
                   help="candidates: GT boxes, a detection file, or GT poses without ids (default: the "
                        "config's 'boxes', gt)")
    p.add_argument("--detections", metavar="PATH", default=None,
                   help="COCO results JSON (one file for all videos, or a folder of <video>.json); default "
                        "ROOT/detections/<split>/")
    p.add_argument("--pose-ckpt", default=None,
                   help="finetune / pose checkpoint, run folder or 'latest' (default: weights/pose.ckpt)")
    p.add_argument("--corr-ckpt", default=None,
                   help="refine / siamese checkpoint, run folder or 'latest' (default: weights/correspondence.ckpt)")
    p.add_argument("--reid-ckpt", default=None,
                   help="re-ID checkpoint, weights or 'latest' (default: weights/reid.ckpt)")
    p.add_argument("--render", action="store_true", help="write one MP4 per video (and cue) to DIR/render/")
    p.add_argument("--max-videos", type=int, default=None, metavar="N", help="only the first N videos")
    p.add_argument("--preset", choices=["paper", "release"], default="paper",
                   help="tracker settings: the paper's (default) or the authors' released tracker's")
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="keep the networks' per-video precomputation in DIR and reuse it when the checkpoints "
                        "and the settings it depends on are the same (sweeps; docs/sweeps.md)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--no-eval", action="store_true", help="write the predictions only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="tracking config overrides")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    return _run(_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    import torch

    from corrtrack.tracking import (CUES, TrackingConfig, evaluate_cues, format_table, load_videos,
                                    render_video, track_videos, video_detections, write_prediction)
    from corrtrack.tracking.candidates import detection_file_for
    from corrtrack.tracking.models import load_models

    config = TrackingConfig.from_overrides(args.overrides, TrackingConfig.preset(args.preset))
    if args.boxes is not None:
        config = config.replace(boxes=args.boxes)
    cues = list(CUES) if args.cue == "all" else [args.cue]
    if args.cue != "all":
        config = config.replace(cue=args.cue)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    progress = not args.quiet

    need_images = config.boxes != "gt-poses" or args.render or any(c in ("flow", "reid", "corr") for c in cues)
    videos = load_videos(args.posetrack_root, args.split, args.max_videos, check_images=need_images)
    det_files = {}
    if config.boxes == "detections":
        det_files = {v.name: detection_file_for(v.name, args.detections, args.posetrack_root, args.split)
                     for v in videos}
    models, skipped = load_models(config, cues, args.pose_ckpt, args.corr_ckpt, args.reid_ckpt, device,
                                  optional=("reid",) if args.cue == "all" else ())
    for kind, msg in skipped.items():
        print(f"note: the {kind} cue is skipped: {msg}", file=sys.stderr)
        cues.remove(kind)

    print(f"tracking {len(videos)} video(s) of {args.posetrack_root} ({args.split}) with cue(s) "
          f"{', '.join(cues)}; boxes={config.boxes}, recovery={config.recovery and config.boxes != 'gt-poses'}, "
          f"solver={config.solver}, tau_corr={config.tau_corr}, joint_threshold={config.joint_threshold}",
          file=sys.stderr)
    pred_dirs = {c: (out / c if args.cue == "all" else out) for c in cues}
    for d in pred_dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    predictions: dict[str, dict] = {c: {} for c in cues}
    timing: dict[str, float] = {}
    frames = 0
    t0 = time.perf_counter()

    def detections(video):
        return video_detections(video.name, det_files[video.name], args.posetrack_root, args.split,
                                config.detection_min_score)

    store = None
    if args.cache_dir:
        from corrtrack.tracking.store import CacheStore

        store = CacheStore(args.cache_dir, models.files)
    for video, cache, results in track_videos(videos, config, models, cues, detections=detections,
                                              progress=progress, store=store):
        frames += len(cache.frames)
        for k, v in cache.seconds.items():
            timing[k] = timing.get(k, 0.0) + v
        for cue, res in results.items():
            seq = res.to_sequence()
            write_prediction(seq, pred_dirs[cue])
            predictions[cue][video.name] = seq
            timing["association"] = timing.get("association", 0.0) + res.seconds.get("association", 0.0)
            if "merge" in res.seconds:
                timing["merge"] = timing.get("merge", 0.0) + res.seconds["merge"]
            if args.render:
                suffix = f"_{cue}" if len(cues) > 1 else ""
                render_video(res, out / "render" / f"{video.name}{suffix}.mp4")
    elapsed = time.perf_counter() - t0
    print(f"wrote {sum(len(p) for p in predictions.values())} prediction file(s) to {out} "
          f"({frames} frames tracked in {elapsed:.1f} s)", file=sys.stderr)
    summary = {"config": config.to_dict(), "cues": cues, "posetrack_root": str(args.posetrack_root),
               "split": args.split, "videos": [v.name for v in videos], "frames": frames,
               "seconds": round(elapsed, 2), "seconds_by_stage": {k: round(v, 3) for k, v in timing.items()},
               "checkpoints": {"pose": args.pose_ckpt, "corr": args.corr_ckpt, "reid": args.reid_ckpt},
               "predictions": {c: str(d) for c, d in pred_dirs.items()}}
    if store is not None:
        summary["cache"] = {"dir": str(store.root), "hits": dict(store.hits), "misses": dict(store.misses)}
    if not args.no_eval:
        table = evaluate_cues(videos, predictions, hota=True)
        title = (f"{len(videos)} video(s), boxes={config.boxes}, recovery="
                 f"{'on' if config.recovery and config.boxes != 'gt-poses' else 'off'}, "
                 f"joint threshold {config.joint_threshold}")
        text = format_table(table, title)
        print(text)
        summary["table"] = table
        res_dir = out / "results"
        res_dir.mkdir(parents=True, exist_ok=True)
        (res_dir / "table.md").write_text("```\n" + text + "\n```\n")
    res_dir = out / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / "table.json").write_text(json.dumps(_plain(summary), indent=2))
    return 0


def _plain(v):
    """JSON-ready: numpy scalars to Python numbers, NaN to null."""
    import math

    import numpy as np

    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


if __name__ == "__main__":
    sys.exit(main())
