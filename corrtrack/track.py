"""Track people in PoseTrack-format videos, or in a plain video file, with one association cue, or all
of them (paper §5, Table 2).

    python -m corrtrack.track --posetrack-root ROOT [--split val] --out DIR --cue {oks,flow,reid,corr,all}
        [--boxes gt|detections|gt-poses] [--detections PATH] [--pose-ckpt CKPT] [--corr-ckpt CKPT]
        [--reid-ckpt CKPT] [--render] [--max-videos N] [--preset paper|release|shipped] [--cache-dir DIR] [key=value ...]
    python -m corrtrack.track --video FILE.mp4 --out DIR [--cue oks|flow|reid|corr|all] [--detections PATH]
        [--max-frames N] [--pose-ckpt CKPT] [--corr-ckpt CKPT] [--reid-ckpt CKPT] [--render] [key=value ...]

ROOT is the official PoseTrack layout (``ROOT/annotations/<split>/*.json``, image paths relative to ROOT);
for the synthetic world ROOT is ``<world>/posetrack``, whose ``detections/<split>/`` holds the default
detection files. ``DIR`` receives one PoseTrack 2018 JSON per video under the GT's file names (with
``--cue all``: ``DIR/<cue>/``), the evaluation (IDSW, MOTA, mAP, HOTA per cue) in ``DIR/results/``
and, with ``--render``, one MP4 per video (and cue) in ``DIR/render/``.

``--video`` tracks a video file without labels (any format OpenCV decodes): person boxes from OpenCV's
HOG people detector, or from ``--detections`` (a COCO results JSON whose image ids are 0-based frame
indices, or a MOT Challenge det.txt with 1-based frames); ``DIR/<video stem>.json`` (PoseTrack 2018, one
image per frame named ``<stem>/NNNNNN.jpg`` by its 0-based index), ``DIR/results/summary.json`` (settings,
timings) and, with ``--render``, ``DIR/render/<stem>.mp4``; nothing is evaluated.

``key=value`` overrides the tracking config (``experiments/configs/tracking.yaml``; docs/tracking.md). Bad
input gets one line naming the file (exit status 2; ``corrtrack.cli``), never a traceback (``--debug`` or
CORRTRACK_DEBUG=1 shows it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from corrtrack.cli import InputError, entry_point


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m corrtrack.track", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="key=value: any tracking config key, e.g. tau_corr=0.3 joint_threshold=0.3 "
                                       "recovery=false solver=hungarian merge=true hog_upscale=2 (docs/tracking.md)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--posetrack-root", metavar="ROOT",
                     help="PoseTrack layout: ROOT/annotations/<split>/*.json (synthetic world: <world>/posetrack)")
    src.add_argument("--video", metavar="FILE", help="a plain video file without labels (e.g. an MP4)")
    p.add_argument("--split", default="val", help="annotation split folder (default: val)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--cue", default=None, choices=["oks", "flow", "reid", "corr", "all"],
                   help="association cue; 'all' tracks with every cue on the same candidates (required with "
                        "--posetrack-root; with --video the config's cue, corr, by default)")
    p.add_argument("--boxes", choices=["gt", "detections", "gt-poses"], default=None,
                   help="candidates: GT boxes, a detection file, or GT poses without ids (default: the "
                        "config's 'boxes', gt; --video: always detections)")
    p.add_argument("--detections", metavar="PATH", default=None,
                   help="COCO results JSON (one file for all videos, or a folder of <video>.json); default "
                        "ROOT/detections/<split>/. With --video: a COCO results JSON (image_id = 0-based frame "
                        "index) or a MOT det.txt (1-based frames); default: OpenCV's HOG people detector")
    p.add_argument("--pose-ckpt", default=None,
                   help="finetune / pose checkpoint, run folder or 'latest' (default: weights/pose.ckpt)")
    p.add_argument("--corr-ckpt", default=None,
                   help="refine / siamese checkpoint, run folder or 'latest' (default: weights/correspondence.ckpt)")
    p.add_argument("--reid-ckpt", default=None,
                   help="re-ID checkpoint, weights or 'latest' (default: weights/reid.ckpt)")
    p.add_argument("--render", action="store_true", help="write one MP4 per video (and cue) to DIR/render/")
    p.add_argument("--max-videos", type=int, default=None, metavar="N", help="only the first N videos")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="--video: only the first N frames")
    p.add_argument("--preset", choices=["paper", "release", "shipped"], default="paper",
                   help="tracker settings (corrtrack.tracking.config.PRESETS): the paper's (default), the "
                        "authors' released tracker's, or the operating point of the shipped CPU-trained weights (docs/tracking.md)")
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
    parser = _parser()
    args = parser.parse_args(argv)
    if args.video is None and args.cue is None:
        parser.error("the following arguments are required: --cue")
    if args.video is None and args.max_frames is not None:
        parser.error("--max-frames goes with --video")
    if args.video is not None and args.boxes not in (None, "detections"):
        parser.error(f"--boxes {args.boxes} needs labels; a plain video's boxes come from the HOG detector or "
                     "--detections")
    if args.max_frames is not None and args.max_frames < 1:
        parser.error("--max-frames must be >= 1")
    return _run_video(args) if args.video is not None else _run(args)


def _setup(args: argparse.Namespace, boxes: str | None):
    """(config, cues, device) from the preset, the overrides, ``--boxes`` and ``--cue``."""
    import torch

    from corrtrack.tracking import CUES, TrackingConfig

    config = TrackingConfig.from_overrides(args.overrides, TrackingConfig.preset(args.preset))
    if boxes is not None:
        config = config.replace(boxes=boxes)
    cue = args.cue or config.cue
    cues = list(CUES) if cue == "all" else [cue]
    if cue != "all":
        config = config.replace(cue=cue)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return config, cues, device


def _models(args: argparse.Namespace, config, cues: list[str], device: str):
    """The networks the run needs; a cue whose network is optional (reid with --cue all) and missing is
    dropped from ``cues`` with a note."""
    from corrtrack.tracking.models import load_models

    models, skipped = load_models(config, cues, args.pose_ckpt, args.corr_ckpt, args.reid_ckpt, device,
                                  optional=("reid",) if args.cue == "all" else ())
    for kind, msg in skipped.items():
        print(f"note: the {kind} cue is skipped: {msg}", file=sys.stderr)
        cues.remove(kind)
    return models


def _track_and_write(videos, config, models, cues: list[str], detections, out: Path, pred_dirs: dict[str, Path],
                     render: bool, progress: bool, store=None) -> tuple[dict[str, dict], dict[str, float], int]:
    """Track every video with every cue, writing each prediction (and render) as it comes. Returns
    ({cue: {video name: Sequence}}, seconds by stage, frames processed). ``store``: a disk cache of the
    precomputations (``corrtrack.tracking.store.CacheStore``, ``--cache-dir``)."""
    from corrtrack.tracking import render_video, track_videos, write_prediction

    for d in pred_dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    predictions: dict[str, dict] = {c: {} for c in cues}
    timing: dict[str, float] = {}
    frames = 0
    for video, cache, results in track_videos(videos, config, models, cues, detections=detections,
                                              progress=progress, store=store):
        frames += len(cache.frames)
        for k, v in cache.seconds.items():
            timing[k] = timing.get(k, 0.0) + v
        for cue, res in results.items():
            seq = res.to_sequence()
            write_prediction(seq, pred_dirs[cue])
            predictions[cue][video.name] = seq
            for k in ("association", "merge"):
                if k in res.seconds:
                    timing[k] = timing.get(k, 0.0) + res.seconds[k]
            if render:
                suffix = f"_{cue}" if len(cues) > 1 else ""
                render_video(res, out / "render" / f"{video.name}{suffix}.mp4", fps=getattr(video, "fps", 10.0))
    return predictions, timing, frames


def _run(args: argparse.Namespace) -> int:
    """``--posetrack-root``: track, write, evaluate."""
    from corrtrack.tracking import load_videos, video_detections
    from corrtrack.tracking.candidates import detection_file_for

    config, cues, device = _setup(args, args.boxes)
    need_images = config.boxes != "gt-poses" or args.render or any(c in ("flow", "reid", "corr") for c in cues)
    videos = load_videos(args.posetrack_root, args.split, args.max_videos, check_images=need_images)
    det_files = {}
    if config.boxes == "detections":
        det_files = {v.name: detection_file_for(v.name, args.detections, args.posetrack_root, args.split)
                     for v in videos}
    models = _models(args, config, cues, device)
    recovery = config.recovery and config.boxes != "gt-poses"
    print(f"tracking {len(videos)} video(s) of {args.posetrack_root} ({args.split}) with cue(s) "
          f"{', '.join(cues)}; boxes={config.boxes}, recovery={recovery}, "
          f"solver={config.solver}, tau_corr={config.tau_corr}, joint_threshold={config.joint_threshold}",
          file=sys.stderr)
    out = Path(args.out)
    pred_dirs = {c: (out / c if args.cue == "all" else out) for c in cues}

    def detections(video):
        return video_detections(video.name, det_files[video.name], args.posetrack_root, args.split,
                                config.detection_min_score)

    store = None
    if args.cache_dir:
        from corrtrack.tracking.store import CacheStore

        store = CacheStore(args.cache_dir, models.files)
    t0 = time.perf_counter()
    predictions, timing, frames = _track_and_write(videos, config, models, cues, detections, out, pred_dirs,
                                                   args.render, not args.quiet, store)
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
    res_dir = out / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_eval:
        summary["table"] = _evaluate(videos, predictions, config, res_dir)
    (res_dir / "table.json").write_text(json.dumps(_plain(summary), indent=2))
    return 0


def _evaluate(videos, predictions: dict[str, dict], config, res_dir: Path) -> dict:
    """Evaluate every cue, print the Table 2 layout and write it to ``res_dir/table.md``; the table."""
    from corrtrack.tracking import evaluate_cues, format_table

    table = evaluate_cues(videos, predictions, hota=True)
    title = (f"{len(videos)} video(s), boxes={config.boxes}, recovery="
             f"{'on' if config.recovery and config.boxes != 'gt-poses' else 'off'}, "
             f"joint threshold {config.joint_threshold}")
    text = format_table(table, title)
    print(text)
    (res_dir / "table.md").write_text("```\n" + text + "\n```\n")
    return table


def _run_video(args: argparse.Namespace) -> int:
    """``--video``: boxes (HOG or a detection file) -> the same tracker -> prediction, render, summary."""
    from corrtrack.tracking.footage import open_footage

    config, cues, device = _setup(args, "detections")
    if config.labeled_only:
        raise InputError("labeled_only=true: a plain video has no labelled frames (every frame is tracked)")
    models = _models(args, config, cues, device)               # a missing checkpoint fails before decoding
    t0 = time.perf_counter()
    video, dets, source = open_footage(args.video, config, args.detections, args.max_frames, not args.quiet)
    t_boxes = time.perf_counter() - t0
    n_boxes = sum(int((d[:, 4] >= config.detection_min_score).sum()) for d in dets.values())
    print(f"tracking {args.video}: {len(video)} frames {video.size_hw[1]}x{video.size_hw[0]} at {video.fps:g} "
          f"frames/s, {n_boxes} person box(es) from {source} (score >= {config.detection_min_score}), cue(s) "
          f"{', '.join(cues)}, recovery={config.recovery}", file=sys.stderr)
    out = Path(args.out)
    pred_dirs = {c: (out / c if args.cue == "all" else out) for c in cues}
    t1 = time.perf_counter()
    predictions, timing, frames = _track_and_write([video], config, models, cues, {video.name: dets}, out,
                                                   pred_dirs, args.render, not args.quiet)
    video.close()
    t_track = time.perf_counter() - t1
    timing["boxes" if source != "hog" else "hog"] = t_boxes
    elapsed = t_boxes + t_track
    for cue, preds in predictions.items():
        seq = preds[video.name]
        ids = {p.track_id for f in seq.frames for p in f.persons}
        print(f"{cue}: {len(ids)} track(s), {seq.num_persons} pose(s) in {len(video)} frames -> "
              f"{pred_dirs[cue] / (video.name + '.json')}")
    print(f"{frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.2f} frames/s, boxes included)",
          file=sys.stderr)
    summary = {"config": config.to_dict(), "cues": cues, "video": str(args.video), "frames": frames,
               "frame_size": [video.size_hw[1], video.size_hw[0]], "video_fps": video.fps, "boxes": source,
               "person_boxes": n_boxes, "seconds": round(elapsed, 2),
               "frames_per_second": round(frames / max(elapsed, 1e-9), 3),
               "seconds_by_stage": {k: round(v, 3) for k, v in timing.items()},
               "checkpoints": {"pose": args.pose_ckpt, "corr": args.corr_ckpt, "reid": args.reid_ckpt},
               "predictions": {c: str(d / f"{video.name}.json") for c, d in pred_dirs.items()}}
    res_dir = out / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / "summary.json").write_text(json.dumps(_plain(summary), indent=2))
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
