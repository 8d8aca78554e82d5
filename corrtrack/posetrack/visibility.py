"""Per-joint visibility sidecars of the synthetic world (``posetrack/visibility/<split>/<sequence>.json``).

A sidecar maps each PoseTrack annotation ``id`` (as a string) to 17 flags in 2018 slot order:
0 = outside the image or not annotated, 1 = occluded, 2 = visible (docs/synthetic_world.md). Real
PoseTrack has no sidecar; callers treat a missing file as "occlusion unknown".
"""
from __future__ import annotations

import os

import numpy as np

from corrtrack.keypoints import NUM_JOINTS
from corrtrack.posetrack.io import read_json
from corrtrack.posetrack.types import PoseTrackFormatError


def load_visibility(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{annotation id as a string: (17,) int64 flags}`` of one sidecar file. A malformed file raises
    PoseTrackFormatError naming the file and the annotation id."""
    path = os.fspath(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise PoseTrackFormatError("expected an object {annotation id: 17 flags}", path)
    out = {}
    for key, flags in data.items():
        if (not isinstance(flags, list) or len(flags) != NUM_JOINTS
                or not all(isinstance(f, int) and not isinstance(f, bool) and 0 <= f <= 2 for f in flags)):
            raise PoseTrackFormatError(f"expected {NUM_JOINTS} flags in 0..2, got {str(flags)[:40]}", path, key)
        out[str(key)] = np.asarray(flags, dtype=np.int64)
    return out


__all__ = ["load_visibility"]
