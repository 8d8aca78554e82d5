"""Person detections in the COCO results format, as the top-down pose estimator and the tracker read them.

A detection file is a JSON list of ``{"image_id": int, "bbox": [x, y, w, h], "score": float,
"category_id": int}`` (category 1 = person; a missing category counts as 1, a missing score as 1.0).
Detections may come as one file or as a folder of such files (e.g. one per PoseTrack video); image ids
are COCO / PoseTrack 2018 image ids, boxes are in image pixels.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from corrtrack.posetrack.io import read_json
from corrtrack.posetrack.types import PoseTrackFormatError

PERSON_CATEGORY = 1
MIN_BOX_SIDE = 1.0       # boxes with a side of at most this many pixels are dropped


def detection_files(path: str | os.PathLike) -> list[Path]:
    """The detection file itself, or the ``*.json`` files of a folder (sorted). FileNotFoundError if none."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files:
            raise FileNotFoundError(f"{path}: no detection files (*.json) in this folder")
        return files
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"{path}: detection file not found")


def _number(v, f: Path, field: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PoseTrackFormatError(f"expected a number, got {v!r}", str(f), field)
    return float(v)


def _parse_file(f: Path, min_score: float, out: dict[int, list]) -> None:
    dets = read_json(str(f))
    if not isinstance(dets, list):
        raise PoseTrackFormatError(f"expected a COCO results list of detections, got a JSON "
                                   f"{type(dets).__name__}", str(f))
    for i, d in enumerate(dets):
        fld = f"[{i}]"
        if not isinstance(d, dict):
            raise PoseTrackFormatError(f"expected an object, got {d!r:.40}", str(f), fld)
        if int(_number(d.get("category_id", PERSON_CATEGORY), f, fld + ".category_id")) != PERSON_CATEGORY:
            continue
        if "image_id" not in d:
            raise PoseTrackFormatError("missing field", str(f), fld + ".image_id")
        image_id = _number(d["image_id"], f, fld + ".image_id")
        if not image_id.is_integer():
            raise PoseTrackFormatError(f"expected an integer, got {d['image_id']!r}", str(f), fld + ".image_id")
        box = d.get("bbox")
        if not isinstance(box, list) or len(box) != 4:
            raise PoseTrackFormatError(f"expected [x, y, w, h], got {box!r:.40}", str(f), fld + ".bbox")
        x, y, w, h = (_number(v, f, f"{fld}.bbox[{k}]") for k, v in enumerate(box))
        score = _number(d.get("score", 1.0), f, fld + ".score")
        if score >= min_score and w > MIN_BOX_SIDE and h > MIN_BOX_SIDE:
            out.setdefault(int(image_id), []).append((x, y, w, h, score))


def load_detections(path: str | os.PathLike, min_score: float = 0.0) -> dict[int, np.ndarray]:
    """Person detections of a COCO results file or a folder of them -> ``{image_id: (N, 5) float64}``,
    rows [x, y, w, h, score] in image pixels, sorted by descending score (file order among equal scores).

    Keeps category 1 (person) with score >= ``min_score`` and both box sides > 1 pixel. A missing path
    raises FileNotFoundError; a malformed file raises PoseTrackFormatError naming the file and the field
    (e.g. ``dets.json: field '[3].bbox': expected [x, y, w, h], got null``)."""
    out: dict[int, list] = {}
    for f in detection_files(path):
        _parse_file(f, float(min_score), out)
    result = {}
    for image_id, rows in out.items():
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        result[image_id] = a[np.argsort(-a[:, 4], kind="stable")]
    return result


__all__ = ["PERSON_CATEGORY", "detection_files", "load_detections"]
