"""Person detections in the COCO results format, as the top-down pose estimator and the tracker read them,
and in the MOT Challenge ``det.txt`` format (:func:`load_mot_detections`), as a video tracker reads them.

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


MOT_MIN_FIELDS = 7      # frame, id, x, y, w, h, score (then x, y, z of the 3D challenges, ignored)


def _mot_row(f: Path, line_no: int, line: str) -> tuple[int, tuple[float, ...]]:
    """(0-based frame, (x, y, w, h, score)) of one ``det.txt`` line; PoseTrackFormatError naming the line."""
    cells = [c.strip() for c in line.split(",")]
    if len(cells) == 1:
        cells = line.split()                    # some tools separate the columns by blanks
    where = f"line {line_no}"
    if len(cells) < MOT_MIN_FIELDS:
        raise PoseTrackFormatError(f"expected at least {MOT_MIN_FIELDS} comma-separated values "
                                   f"(frame,id,x,y,w,h,score,...), got {len(cells)}: {line.strip()!r:.60}",
                                   str(f), where)
    names = ("frame", "id", "x", "y", "w", "h", "score")
    vals = []
    for name, cell in zip(names, cells):
        try:
            v = float(cell)
        except ValueError:
            raise PoseTrackFormatError(f"expected a number, got {cell!r:.20}", str(f), f"{where}, {name}") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise PoseTrackFormatError(f"expected a finite number, got {cell!r:.20}", str(f), f"{where}, {name}")
        vals.append(v)
    frame = vals[0]
    if not frame.is_integer() or frame < 1:
        raise PoseTrackFormatError(f"expected a frame number >= 1 (MOT frames count from 1), got {cells[0]!r}",
                                   str(f), f"{where}, frame")
    return int(frame) - 1, tuple(vals[2:7])


def load_mot_detections(path: str | os.PathLike, min_score: float = 0.0) -> dict[int, np.ndarray]:
    """Person detections of a MOT Challenge ``det.txt`` -> ``{frame: (N, 5) float64}`` like
    :func:`load_detections`: rows [x, y, w, h, score] in image pixels, best first.

    One detection per line, ``frame,id,x,y,w,h,score[,x3d,y3d,z3d]`` (``id`` is -1 for detections and is
    ignored; blank lines and lines starting with ``#`` are skipped). MOT frames count from 1; the keys
    returned are 0-based frame indices (MOT frame 1 -> 0). Keeps score >= ``min_score`` and both box sides
    > 1 pixel. A missing file raises FileNotFoundError; a malformed line raises PoseTrackFormatError naming
    the file and the line (e.g. ``det.txt: field 'line 3, w': expected a number, got 'abc'``)."""
    f = Path(path)
    if not f.is_file():
        raise FileNotFoundError(f"{f}: detection file not found")
    try:
        text = f.read_text()
    except UnicodeDecodeError:
        raise PoseTrackFormatError("not a text file (a MOT det.txt holds one detection per line)", str(f)) from None
    out: dict[int, list] = {}
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        frame, (x, y, w, h, score) = _mot_row(f, line_no, line)
        if score >= min_score and w > MIN_BOX_SIDE and h > MIN_BOX_SIDE:
            out.setdefault(frame, []).append((x, y, w, h, score))
    result = {}
    for frame, rows in out.items():
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        result[frame] = a[np.argsort(-a[:, 4], kind="stable")]
    return result


__all__ = ["PERSON_CATEGORY", "detection_files", "load_detections", "load_mot_detections"]
