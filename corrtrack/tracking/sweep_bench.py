"""What a tracking sweep costs with the disk cache, against one tracking run.

    python -m corrtrack.bench sweep-cache --data DIR [--split val] [--max-videos 2] [--max-frames 20]
        [--cue corr] [--boxes gt] [--tau 0.1,0.2,0.3,0.4,0.5] [--thresholds 0.1,0.2,0.3,0.4,0.5]
        [--pose-ckpt CKPT --corr-ckpt CKPT --reid-ckpt CKPT] [--cache-dir DIR] [--out FILE.json] [key=value ...]

"One tracking run" is what ``python -m corrtrack.track --cue CUE`` does after the interpreter has started:
load the nets, run them over the videos, track, write the prediction files and evaluate them. The sweep
runs the same thing for every point of the ``tau_corr`` x ``joint_threshold`` grid with a
``CacheStore`` in a fresh folder (docs/sweeps.md): the first point runs the networks and stores their
output, the others read it back. Printed: both wall times, the ratio sweep / one run, the process's CPU
seconds, and whether the sweep's point at the run's own settings gave the run's numbers.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from corrtrack.cli import InputError, entry_point
from corrtrack.tracking.bench import add_video_arguments, write_result
from corrtrack.tracking.config import CUES, TrackingConfig
from corrtrack.tracking.models import load_models
from corrtrack.tracking.output import write_prediction
from corrtrack.tracking.pipeline import evaluate_cues, track_videos
from corrtrack.tracking.store import CacheStore
from corrtrack.tracking.video import load_videos


def tracking_run(videos: list, config: TrackingConfig, ckpts: dict, out: Path, cache_dir: Path | None = None,
                 device: str = "cpu") -> dict[str, float]:
    """One run of ``python -m corrtrack.track --cue <config.cue>`` on the given videos (nets loaded, run or
    read from ``cache_dir``, tracked, written to ``out``, evaluated). Returns the cue's metrics."""
    cue = config.cue
    models, _ = load_models(config, [cue], ckpts.get("pose"), ckpts.get("corr"), ckpts.get("reid"), device)
    store = CacheStore(cache_dir, models.files) if cache_dir is not None else None
    out.mkdir(parents=True, exist_ok=True)
    preds = {}
    for video, _, results in track_videos(videos, config, models, [cue], progress=False, store=store):
        seq = results[cue].to_sequence()
        write_prediction(seq, out)
        preds[video.name] = seq
    return evaluate_cues(videos, {cue: preds})[cue]


def run_sweep_bench(data: str | Path, config: TrackingConfig, taus: list[float], thresholds: list[float],
                    ckpts: dict, split: str = "val", max_videos: int | None = 2, max_frames: int | None = 20,
                    cache_dir: str | Path | None = None, device: str = "cpu", progress: bool = True) -> dict:
    """Time one run at ``config`` (no cache), then the grid with a cache in a fresh folder."""
    import resource

    from tqdm import tqdm

    root = Path(data) / "posetrack" if (Path(data) / "posetrack").is_dir() else Path(data)
    videos = load_videos(root, split, max_videos)
    if max_frames:
        videos = [v.head(max_frames) for v in videos]
    scratch = Path(tempfile.mkdtemp(prefix="corrtrack-sweep-bench-"))
    cache = Path(cache_dir) if cache_dir else scratch / "cache"
    if cache.exists() and any(cache.iterdir()):
        raise InputError(f"--cache-dir {cache}: not empty (the sweep must start without a cache)")

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    try:
        t0, c0 = time.perf_counter(), cpu()
        single = tracking_run(videos, config, ckpts, scratch / "single", None, device)
        t_single, c_single = time.perf_counter() - t0, cpu() - c0
        points = [(t, j) for t in taus for j in thresholds]
        rows = []
        t0, c0 = time.perf_counter(), cpu()
        for i, (tau, jt) in enumerate(tqdm(points, desc="sweep points", unit="point", disable=not progress)):
            cfg = config.replace(tau_corr=tau, joint_threshold=jt)
            m = tracking_run(videos, cfg, ckpts, scratch / f"point{i}", cache, device)
            rows.append({"tau_corr": tau, "joint_threshold": jt, "mota": m["mota"], "map": m["map"]})
        t_sweep, c_sweep = time.perf_counter() - t0, cpu() - c0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    same = [r for r in rows if r["tau_corr"] == config.tau_corr and r["joint_threshold"] == config.joint_threshold]
    return {"videos": [v.name for v in videos], "frames": sum(len(v) for v in videos),
            "labelled_frames": sum(len(v.labeled()) for v in videos), "cue": config.cue, "boxes": config.boxes,
            "recovery": config.recovery, "points": len(points),
            "single_s": t_single, "single_cpu_s": c_single, "sweep_s": t_sweep, "sweep_cpu_s": c_sweep,
            "ratio": t_sweep / t_single, "cpu_ratio": c_sweep / max(c_single, 1e-9),
            "single": {"mota": single["mota"], "map": single["map"]},
            "same_point_matches": bool(same) and all(abs(r["mota"] - single["mota"]) < 1e-9 and
                                                     abs(r["map"] - single["map"]) < 1e-9 for r in same),
            "rows": rows}


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m corrtrack.bench sweep-cache", description=__doc__.split("\n\n")[0])
    add_video_arguments(p, max_frames=20)
    p.add_argument("--cue", choices=list(CUES), default="corr")
    p.add_argument("--tau", type=_floats, default=[0.1, 0.2, 0.3, 0.4, 0.5], help="tau_corr values")
    p.add_argument("--thresholds", type=_floats, default=[0.1, 0.2, 0.3, 0.4, 0.5], help="joint_threshold values")
    p.add_argument("--pose-ckpt", default=None)
    p.add_argument("--corr-ckpt", default=None)
    p.add_argument("--reid-ckpt", default=None)
    p.add_argument("--cache-dir", default=None, help="an empty folder for the cache (default: a temporary one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="write the result as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="tracking config overrides")
    args = p.parse_args(argv)
    if args.boxes == "detections":
        raise InputError("--boxes detections: not supported by this benchmark (use gt or gt-poses)")
    config = TrackingConfig.from_overrides(args.overrides).replace(boxes=args.boxes, cue=args.cue)
    ckpts = {"pose": args.pose_ckpt, "corr": args.corr_ckpt, "reid": args.reid_ckpt}
    r = run_sweep_bench(args.data, config, args.tau, args.thresholds, ckpts, args.split, args.max_videos,
                        args.max_frames or None, args.cache_dir, args.device)
    print(f"{len(r['videos'])} video(s), {r['frames']} frames ({r['labelled_frames']} labelled), cue {r['cue']}, "
          f"boxes={r['boxes']}, recovery={r['recovery']}")
    print(f"one tracking run:        {r['single_s']:8.1f} s wall, {r['single_cpu_s']:8.1f} s CPU")
    print(f"{r['points']}-point sweep (cache): {r['sweep_s']:8.1f} s wall, {r['sweep_cpu_s']:8.1f} s CPU")
    print(f"ratio sweep / one run:   {r['ratio']:8.2f} (CPU {r['cpu_ratio']:.2f}); the sweep's point at the "
          f"run's settings gives the run's MOTA and mAP: {'yes' if r['same_point_matches'] else 'NO'}")
    write_result(args.out, r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
