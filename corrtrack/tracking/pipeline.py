"""Tracking many videos with several cues, and evaluating them: what the command line
(``python -m corrtrack.track``) and the training callback share.

    videos = load_videos(root, "val")
    for video, cache, results in track_videos(videos, config, models, cues=("oks", "corr")):
        predictions["corr"][video.name] = results["corr"].to_sequence()
    table = evaluate_cues(videos, predictions)          # {cue: {"idsw", "mota", "map", "hota", ...}}
    print(format_table(table))

Each video is precomputed once (candidates, recovery, correspondences, flow, re-ID) and then tracked once
per cue with the same candidates.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping

from corrtrack.posetrack.types import Sequence
from corrtrack.tracking.config import TrackingConfig
from corrtrack.tracking.precompute import Models, VideoCache, parts_for, precompute_video
from corrtrack.tracking.tracker import TrackResult, track
from corrtrack.tracking.video import Video

if TYPE_CHECKING:
    from corrtrack.tracking.store import CacheStore

CUE_TITLES = {"oks": "OKS", "flow": "Optical flow (DIS)", "reid": "Re-ID", "corr": "Correspondences"}


def track_video(video: Video, config: TrackingConfig, models: Models, cue: str | None = None,
                detections: dict | None = None, progress: bool = False) -> TrackResult:
    """Precompute and track one video with one cue (default ``config.cue``)."""
    cue = cue or config.cue
    cache = precompute_video(video, config, models, cues=[cue], detections=detections, progress=progress)
    return track(cache, config, cue, models)


def track_videos(videos: Iterable[Video], config: TrackingConfig, models: Models, cues: Iterable[str],
                 detections: Callable[[Video], dict] | Mapping[str, dict] | None = None,
                 progress: bool = True, caches: Mapping[str, VideoCache] | None = None,
                 store: "CacheStore | None" = None) -> Iterator[tuple[Video, VideoCache, dict[str, TrackResult]]]:
    """For each video: precompute once for all ``cues``, then track once per cue. Yields
    (video, cache, {cue: TrackResult}) as each video finishes, so a caller can write results as they come.

    detections: per video {image_id: (N, 5)}, as a function of the video or a mapping by video name
    (needed with ``config.boxes == "detections"``). caches: earlier precomputations by video name to reuse
    (only their missing parts are computed; see ``precompute_video``'s ``base``). store: a disk cache
    (``corrtrack.tracking.store.CacheStore``): a video whose candidates and cue parts are stored for these
    networks and settings runs no network; whatever is missing is computed and stored."""
    from tqdm import tqdm

    cues = list(cues)
    videos = list(videos)
    for video in tqdm(videos, desc="videos", unit="video", disable=not progress):
        det = None
        if config.boxes == "detections" and detections is not None:
            det = detections(video) if callable(detections) else detections[video.name]
        base = caches.get(video.name) if caches else None
        if store is not None and base is None:
            base = store.load(video, config, cues, det)
        if store is not None and base is not None and parts_for(cues, config) <= base.parts:
            cache = base                                       # everything stored: no network
        else:
            cache = precompute_video(video, config, models, cues=cues, detections=det, base=base,
                                     progress=progress)
            if store is not None:
                store.save(cache, config, det)
        yield video, cache, {c: track(cache, config, c, models) for c in cues}


def evaluate_cues(videos: Iterable[Video], predictions: Mapping[str, Mapping[str, Sequence]],
                  hota: bool = True, strict: bool = False) -> dict[str, dict[str, float]]:
    """Evaluate each cue's predictions ({cue: {video name: Sequence}}) against the videos' GT with the
    project's evaluator (poseval's numbers). Returns {cue: {"idsw", "mota", "map", "hota", "deta", "assa",
    "motp", "precision", "recall", "num_misses", "num_false_positives"}} (percent, except counts)."""
    from corrtrack.evaluation import evaluate

    gt = {v.name: v.gt for v in videos}
    out = {}
    for cue, preds in predictions.items():
        m = evaluate(gt, dict(preds), strict=strict, hota=hota)
        s = m.summary()
        d = m.to_dict()
        row = {"idsw": int(round(s["num_switches"])), "mota": s["mota"], "map": s["ap"], "motp": s["motp"],
               "precision": s["precision"], "recall": s["recall"],
               "num_misses": d.get("num_misses"), "num_false_positives": d.get("num_false_positives")}
        if hota:
            row.update(hota=s["hota"], deta=s["deta"], assa=s["assa"])
        out[cue] = row
    return out


def format_table(table: Mapping[str, Mapping[str, float]], title: str = "") -> str:
    """The paper's Table 2 layout: one row per cue, columns IDSW, MOTA, mAP (and HOTA, AssA when
    present)."""
    has_hota = any("hota" in r for r in table.values())
    cols = ["IDSW", "MOTA", "mAP"] + (["HOTA", "AssA"] if has_hota else [])
    keys = ["idsw", "mota", "map"] + (["hota", "assa"] if has_hota else [])
    width = max([len("Tracking method")] + [len(CUE_TITLES.get(c, c)) for c in table])
    lines = [title] if title else []
    lines.append(f"{'Tracking method':<{width}} " + " ".join(f"{c:>7}" for c in cols))
    for cue, row in table.items():
        cells = []
        for k in keys:
            v = row.get(k)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append(f"{'n/a':>7}")
            elif k == "idsw":
                cells.append(f"{int(v):>7d}")
            else:
                cells.append(f"{v:>7.1f}")
        lines.append(f"{CUE_TITLES.get(cue, cue):<{width}} " + " ".join(cells))
    return "\n".join(lines)
