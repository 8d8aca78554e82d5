"""Tracking speed: frames per second per cue, with a breakdown of where the time goes.

    python -m corrtrack.bench tracking --data DIR [--split val] [--max-videos N] [--boxes gt]
        [--max-frames N] [--pose-ckpt CKPT --corr-ckpt CKPT --reid-ckpt CKPT] [--device cpu] [--out FILE.json]
        [key=value ...]

DIR is a synthetic world (``DIR/posetrack``) or a PoseTrack root. Each cue is timed on its own (what
``--cue <cue>`` costs: the candidates, recovery and the cue's own inputs, then association), then all
cues together on one precomputation (what ``--cue all`` costs). Without checkpoints the nets are built
untrained with the architectures of the ``cpu`` presets (speed does not depend on the weights; the
re-ID cue then uses a colour-histogram embedder, timed as such). Breakdown keys: io (reading frames),
pose (pose net on boxes and on recovery boxes), features (correspondence trunk, once per frame),
refinement (per frame pair: Siamese affinities, refinement forward, argmax, look-ups), recovery (its
boxes, OKS and NMS), flow (DIS), reid (embeddings), association (similarities and matching); all in
wall-clock seconds, beside the process's CPU seconds (all threads), which tell how much of the wall time
went to other jobs on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from corrtrack.cli import entry_point
from corrtrack.tracking.config import CUES, TrackingConfig
from corrtrack.tracking.precompute import Models, precompute_video
from corrtrack.tracking.tracker import track
from corrtrack.tracking.video import load_videos

BREAKDOWN = ("io", "pose", "features", "refinement", "recovery", "flow", "reid", "association")


class HistogramEmbedder:
    """A stand-in re-ID model for timing without weights: per-box RGB histograms (3 x 8 bins),
    L2-normalised. Not a re-ID net; used only when no re-ID checkpoint is given."""

    def embed(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = np.zeros((len(boxes), 24))
        h, w = frame.shape[:2]
        for i, (x, y, bw, bh) in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
            x0, y0 = int(np.clip(x, 0, w - 1)), int(np.clip(y, 0, h - 1))
            x1, y1 = int(np.clip(x + bw, x0 + 1, w)), int(np.clip(y + bh, y0 + 1, h))
            c = frame[y0:y1, x0:x1].reshape(-1, 3)
            out[i] = np.concatenate([np.bincount(c[:, k] // 32, minlength=8) for k in range(3)])
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def untrained_models(input_size: int, device: str = "cpu") -> Models:
    """Untrained nets with the ``cpu`` presets' architectures (pose: width 0.25, trunk stride 16, x2 head,
    96x64 crops; Siamese "paper" width 0.25; refinement width 0.25, residual)."""
    from corrtrack.correspondence import CorrespondenceModel
    from corrtrack.nets.correspondence import RefinementNet, SiameseNet
    from corrtrack.nets.pose import PoseNet
    from corrtrack.pose import PoseEstimator

    torch.manual_seed(0)
    pose = PoseEstimator(PoseNet(width=0.25, trunk_stride=16, upsample=1, head_channels=64), input_size=(96, 64),
                         layout="posetrack", device=device)
    corr = CorrespondenceModel(SiameseNet("paper", width=0.25), RefinementNet(width=0.25, residual=True),
                               input_size=input_size, device=device)
    return Models(pose=pose, corr=corr, reid=HistogramEmbedder())


def run_tracking_bench(data: str | Path, split: str = "val", max_videos: int | None = 2,
                       config: TrackingConfig | None = None, models: Models | None = None,
                       cues: tuple[str, ...] = CUES, progress: bool = False, max_frames: int | None = None,
                       warmup: bool = True) -> dict:
    """Time each cue alone and all cues together on the same videos (cut to their first ``max_frames``
    frames). Returns {"per_cue": {cue: {"fps", "seconds", "frames", "breakdown"}}, "all": {...}, "videos",
    settings}."""
    root = Path(data)
    if (root / "posetrack" / "annotations").is_dir():
        root = root / "posetrack"
    config = config or TrackingConfig()
    untrained = models is None
    models = models or untrained_models(config.input_size)
    videos = load_videos(root, split, max_videos)
    if max_frames is not None:
        videos = [v.head(max_frames) for v in videos]
    if config.boxes == "detections":
        from corrtrack.tracking.candidates import video_detections

        dets = {v.name: video_detections(v.name, None, root, split, config.detection_min_score) for v in videos}
    else:
        dets = {}

    def timed(cue_list: list[str]) -> dict:
        br = dict.fromkeys(BREAKDOWN, 0.0)
        frames = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for v in videos:
            cache = precompute_video(v, config, models, cues=cue_list, detections=dets.get(v.name), progress=progress)
            frames += len(cache.frames)
            for k, s in cache.seconds.items():
                br[k] = br.get(k, 0.0) + s
            for c in cue_list:
                br["association"] += track(cache, config, c, models).seconds["association"]
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"fps": frames / total if total > 0 else float("nan"), "seconds": round(total, 3),
                "cpu_seconds": round(cpu, 3), "frames": frames, "breakdown": {k: round(v, 3) for k, v in br.items()}}

    if warmup and videos:
        timed(["oks"])                                  # first-call allocations and lazy imports
    per_cue = {c: timed([c]) for c in cues}
    both = timed(list(cues))
    return {"per_cue": per_cue, "all": both, "videos": [v.name for v in videos], "data": str(root),
            "split": split, "boxes": config.boxes, "recovery": config.recovery, "input_size": config.input_size,
            "untrained_cpu_preset_nets": untrained, "device": str(models.corr.device if models.corr else "cpu"),
            "torch_threads": torch.get_num_threads()}


def format_bench(result: dict) -> str:
    cols = list(BREAKDOWN)
    head = f"{'cue':<8} {'frames/s':>8} {'seconds':>8} {'cpu s':>8} " + " ".join(f"{c[:10]:>10}" for c in cols)
    lines = [head]
    rows = list(result["per_cue"].items()) + [("all", result["all"])]
    for name, r in rows:
        lines.append(f"{name:<8} {r['fps']:>8.2f} {r['seconds']:>8.2f} {r['cpu_seconds']:>8.2f} "
                     + " ".join(f"{r['breakdown'].get(c, 0.0):>10.2f}" for c in cols))
    return "\n".join(lines)


def add_video_arguments(p: argparse.ArgumentParser, max_frames: int | None) -> None:
    """The tracker benchmarks' choice of videos and candidates: --data, --split, --max-videos,
    --max-frames (default ``max_frames``), --boxes."""
    p.add_argument("--data", required=True, help="a synthetic world (DIR/posetrack) or a PoseTrack root")
    p.add_argument("--split", default="val")
    p.add_argument("--max-videos", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=max_frames,
                   help="cut each video to its first N frames" + (" (0: all)" if max_frames else ""))
    p.add_argument("--boxes", choices=["gt", "detections", "gt-poses"], default="gt")


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m corrtrack.bench tracking", description=__doc__.split("\n\n")[0])
    add_video_arguments(p, max_frames=None)
    p.add_argument("--cues", default=",".join(CUES), help="comma-separated cues (default: all four)")
    p.add_argument("--pose-ckpt", default=None)
    p.add_argument("--corr-ckpt", default=None)
    p.add_argument("--reid-ckpt", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="write the result as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="tracking config overrides")
    args = p.parse_args(argv)
    config = TrackingConfig.from_overrides(args.overrides).replace(boxes=args.boxes)
    cues = tuple(c for c in args.cues.split(",") if c)
    models = None
    if args.pose_ckpt or args.corr_ckpt or args.reid_ckpt:
        from corrtrack.tracking.models import load_models

        models, _ = load_models(config, list(cues), args.pose_ckpt, args.corr_ckpt, args.reid_ckpt, args.device)
        if models.reid is None:
            models.reid = HistogramEmbedder()
    elif args.device != "cpu":
        models = untrained_models(config.input_size, args.device)
    result = run_tracking_bench(args.data, args.split, args.max_videos, config, models, cues,
                                max_frames=args.max_frames)
    print(f"{len(result['videos'])} video(s), {result['all']['frames']} frames, boxes={result['boxes']}, "
          f"recovery={result['recovery']}, input {result['input_size']}, device {result['device']}, "
          f"{result['torch_threads']} torch thread(s)"
          + (", untrained nets of the cpu presets' architectures" if result["untrained_cpu_preset_nets"] else ""))
    print(format_bench(result))
    write_result(args.out, result)
    return 0


def write_result(out: str | None, result: dict) -> None:
    """A benchmark's ``--out``: the result as JSON (folders made), one line saying so; nothing without it."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
