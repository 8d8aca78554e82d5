"""Read PoseTrack21 files (``posetrack_data`` annotations and submissions, the PoseTrack21 kit's input).

A PoseTrack21 file is a PoseTrack 2018 file with a few more fields: images carry ``has_labeled_person``
and ignore regions on every image (often empty lists), annotations carry ``person_id`` (an identity shared
across videos, for re-identification) beside ``track_id`` (the per-video track), and image ids are large
integers shared by GT and prediction files (``10000010000``). Tracking is evaluated on ``track_id``, as the
kit does; ``person_id`` stands in for it only where an annotation has no ``track_id``. Everything else is
read, validated and reported exactly as a 2018 file (one error naming the file, the field and the frame).
"""
from __future__ import annotations

import os
from typing import Any

from corrtrack.posetrack.types import Sequence


def is_posetrack21(data: Any) -> bool:
    """True for a parsed PoseTrack21 JSON object: 2018-style ``images`` whose images carry
    ``has_labeled_person`` or whose annotations carry ``person_id``."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        return False
    images, anns = data["images"], data.get("annotations")
    if any(isinstance(im, dict) and "has_labeled_person" in im for im in images[:1]):
        return True
    return isinstance(anns, list) and any(isinstance(a, dict) and "person_id" in a for a in anns)


def parse_posetrack21(data: dict, path: str | None = None, name: str | None = None) -> Sequence:
    """Build a Sequence (``format`` "2021") from a parsed PoseTrack21 file; ``name`` defaults to the file
    stem. Raises PoseTrackFormatError naming the file, the field and the frame on malformed input."""
    from corrtrack.posetrack import io            # io dispatches here: imported late to avoid a cycle

    if name is None:
        name = os.path.splitext(os.path.basename(path))[0] if path else "sequence"
    anns = data.get("annotations")
    if isinstance(anns, list) and any(isinstance(a, dict) and a.get("track_id") is None
                                      and a.get("person_id") is not None for a in anns):
        fixed = []
        for k, a in enumerate(anns):
            if isinstance(a, dict) and a.get("track_id") is None and a.get("person_id") is not None:
                a = dict(a, track_id=io._int(a["person_id"], path, f"annotations[{k}].person_id", None))
            fixed.append(a)
        data = dict(data, annotations=fixed)
    seq = io._parse_2018(data, path, name)
    seq.format = "2021"
    return seq
