"""In-memory model of one PoseTrack video (either file format) and the format error.

All keypoints are held in PoseTrack 2018 slot order (``keypoints.POSETRACK_NAMES``), whatever the file
format was; the 2017 ``annolist`` evaluation ids are converted on load and on save.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from corrtrack.keypoints import NUM_JOINTS


class PoseTrackFormatError(ValueError):
    """A PoseTrack file that cannot be read; the message names the file, the field and the frame."""

    def __init__(self, message: str, path: str | None = None, field: str | None = None,
                 frame: int | None = None):
        self.path, self.field, self.frame, self.detail = path, field, frame, message
        where = []
        if frame is not None:
            where.append(f"frame {frame}")
        if field is not None:
            where.append(f"field '{field}'")
        text = message if not where else f"{', '.join(where)}: {message}"
        super().__init__(f"{path}: {text}" if path else text)


def absent_2018(keypoints: np.ndarray) -> np.ndarray:
    """(..., 17) True where a 2018 slot is unannotated: x = y = 0 and v = 0 (poseval's rule)."""
    k = np.asarray(keypoints)
    return (k[..., 0] == 0) & (k[..., 1] == 0) & (k[..., 2] == 0)


@dataclass(eq=False)
class Person:
    """One person in one frame.

    keypoints: (17, 3) x, y, v in image pixels, PoseTrack 2018 slot order; v is the file's third value
    (visibility in GT; predictions may put anything there, it is never used as a filter).
    present: (17,) bool, which slots hold a point. Default: the 2018 rule (absent iff x = y = v = 0);
    2017 files set it from the listed point ids.
    scores: (17,) per-joint scores or None; NaN marks a present joint without a score.
    bbox, head_box: [x, y, w, h] in pixels or None.
    has_points: False for a 2017 ``annorect`` without ``annopoints`` (the evaluation drops such persons).
    """

    keypoints: np.ndarray
    track_id: int | None = None
    scores: np.ndarray | None = None
    bbox: np.ndarray | None = None
    head_box: np.ndarray | None = None
    present: np.ndarray | None = None
    has_points: bool = True
    score: float | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(NUM_JOINTS, 3)
        if self.present is None:
            self.present = ~absent_2018(self.keypoints)
        else:
            self.present = np.asarray(self.present, dtype=bool).reshape(NUM_JOINTS)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(NUM_JOINTS)
        if self.bbox is not None:
            self.bbox = np.asarray(self.bbox, dtype=np.float64).reshape(4)
        if self.head_box is not None:
            self.head_box = np.asarray(self.head_box, dtype=np.float64).reshape(4)


@dataclass(eq=False)
class Frame:
    """One image of a video.

    ignore_regions: list of (K, 2) polygons (x, y) in pixels; joints strictly inside are not evaluated.
    is_labeled: the file's flag, or None when the file has none (the evaluation does not read it).
    """

    file_name: str = ""
    image_id: int | str | None = None
    persons: list[Person] = field(default_factory=list)
    is_labeled: bool | None = None
    ignore_regions: list[np.ndarray] = field(default_factory=list)


@dataclass(eq=False)
class Sequence:
    """One video: its frames in file order. ``format`` is "2017", "2018", "2021" (PoseTrack21)
    or None (built in memory)."""

    name: str
    frames: list[Frame] = field(default_factory=list)
    format: str | None = None
    path: str | None = None
    vid_id: int | str | None = None

    @property
    def num_persons(self) -> int:
        return sum(len(f.persons) for f in self.frames)
