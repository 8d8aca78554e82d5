"""In-memory model of one PoseTrack video (either file format) and the format error.

All keypoints are held in PoseTrack 2018 slot order (``keypoints.POSETRACK_NAMES``), whatever the file
format was; the 2017 ``annolist`` evaluation ids are converted on load and on save.
"""
from __future__ import annotations

import os
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


# A head size is this share of the head box's diagonal (PCKh; poseval's ``getHeadSize``).
HEAD_SIZE_FACTOR = 0.6


def head_size(head_box: np.ndarray) -> np.ndarray | float:
    """Head size of (..., 4) head boxes [x, y, w, h] in pixels: 0.6 x the box diagonal, computed as poseval
    does from the corners (x2 = x + w). NaN / inf boxes give NaN / inf without a warning; a single box
    gives a float."""
    b = np.asarray(head_box, dtype=np.float64)
    x, y, w, h = np.moveaxis(b, -1, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        dx, dy = (x + w) - x, (y + h) - y
        hs = HEAD_SIZE_FACTOR * np.sqrt(dx * dx + dy * dy)
    return float(hs) if np.ndim(hs) == 0 else hs


def frame_number(file_name: str | os.PathLike) -> int:
    """The frame number of a PoseTrack image: the integer stem of its file name (poseval's rule), e.g.
    ``images/val/000342_mpii_test/000017.jpg`` -> 17. Raises ValueError naming the file otherwise."""
    stem = os.path.splitext(os.path.basename(os.fspath(file_name)))[0]
    try:
        return int(stem)
    except ValueError:
        raise ValueError(f"{os.fspath(file_name)}: a PoseTrack frame file name must be its frame number "
                         f"(an integer), got '{stem}'") from None


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
    score: the person's score or None. ann_id: the 2018 annotation ``id`` (None when absent or 2017).
    """

    keypoints: np.ndarray
    track_id: int | None = None
    scores: np.ndarray | None = None
    bbox: np.ndarray | None = None
    head_box: np.ndarray | None = None
    present: np.ndarray | None = None
    has_points: bool = True
    score: float | None = None
    ann_id: int | str | None = None

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
    width, height: image size in pixels from the file (2018 ``width`` / ``height``), None when absent.
    """

    file_name: str = ""
    image_id: int | str | None = None
    persons: list[Person] = field(default_factory=list)
    is_labeled: bool | None = None
    ignore_regions: list[np.ndarray] = field(default_factory=list)
    width: int | None = None
    height: int | None = None


@dataclass(eq=False)
class Sequence:
    """One video: its frames in file order. ``format`` is "2017", "2018", "2021" (PoseTrack21)
    or None (built in memory). ``categories``: for a file read in the 2018 or PoseTrack21 format, whether it
    holds a non-empty ``categories`` (poseval takes the keypoint order from it); None otherwise."""

    name: str
    frames: list[Frame] = field(default_factory=list)
    format: str | None = None
    path: str | None = None
    vid_id: int | str | None = None
    categories: bool | None = None

    @property
    def num_persons(self) -> int:
        return sum(len(f.persons) for f in self.frames)
