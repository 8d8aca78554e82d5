"""Videos to track: a PoseTrack GT sequence (frames, file names, labels) and the folder its image paths
are relative to. ROOT is the official PoseTrack layout: ``ROOT/annotations/<split>/*.json`` with image
paths (``images/val/<video>/000017.jpg``) relative to ROOT; for the synthetic world ROOT is
``<world>/posetrack``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corrtrack.imageio import read_rgb
from corrtrack.posetrack.io import list_json_files, load_sequence
from corrtrack.posetrack.types import PoseTrackFormatError, Sequence


class TrackingInputError(ValueError):
    """Input the tracker cannot use (a missing or unreadable image, a video without labels, a bad
    detection file, a checkpoint of the wrong stage); the message names the file."""


@dataclass
class Video:
    """One video: ``gt`` its PoseTrack sequence (frame order = file order), ``image_root`` the folder the
    frames' ``file_name`` are relative to. ``name`` is the GT file's stem (prediction files take it)."""

    name: str
    gt: Sequence
    image_root: Path

    def __len__(self) -> int:
        return len(self.gt.frames)

    def image_path(self, index: int) -> Path:
        return Path(self.image_root) / self.gt.frames[index].file_name

    def image(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 RGB. Raises TrackingInputError naming the file."""
        path = self.image_path(index)
        try:
            return read_rgb(path)
        except OSError:
            what = "missing" if not path.is_file() else "unreadable or empty"
            raise TrackingInputError(f"{path}: image {what} (frame {index} of video {self.name}, "
                                     f"{self.gt.path or 'GT'})") from None

    def head(self, num_frames: int) -> "Video":
        """The same video cut to its first ``num_frames`` frames (a cheaper evaluation: its predictions
        are evaluated against the cut GT, ``head(n).gt``)."""
        frames = self.gt.frames[:max(int(num_frames), 0)]
        seq = Sequence(name=self.gt.name, frames=frames, format=self.gt.format, path=self.gt.path,
                       vid_id=self.gt.vid_id)
        return Video(self.name, seq, self.image_root)

    def labeled(self) -> list[int]:
        """Frames holding GT persons (the frames the evaluation reads)."""
        return [i for i, f in enumerate(self.gt.frames) if f.persons]

    def check(self, images: bool = True) -> None:
        """Fail early, naming the file: no frames, no labelled frame, a frame without a file name, or (with
        ``images``) a missing image file."""
        src = self.gt.path or self.name
        if not self.gt.frames:
            raise TrackingInputError(f"{src}: the video has no frames ('images' is empty)")
        if not any(f.persons for f in self.gt.frames):
            raise TrackingInputError(f"{src}: the video has no labelled frame (no annotations), nothing to "
                                     "evaluate or to take GT boxes from")
        for i, f in enumerate(self.gt.frames):
            if not f.file_name:
                raise TrackingInputError(f"{src}: frame {i} has no file_name")
            if images and not self.image_path(i).is_file():
                raise TrackingInputError(f"{self.image_path(i)}: image missing (frame {i} of video {self.name}, "
                                         f"{src}; image paths are relative to {self.image_root})")


def annotation_dir(root: str | os.PathLike, split: str) -> Path:
    """``ROOT/annotations/<split>``; raises TrackingInputError when it is not there."""
    d = Path(root) / "annotations" / split
    if not d.is_dir():
        raise TrackingInputError(f"{d}: no such folder (--posetrack-root must hold annotations/{split}/*.json, "
                                 "the official PoseTrack layout; for a synthetic world give <world>/posetrack)")
    return d


def load_videos(root: str | os.PathLike, split: str = "val", max_videos: int | None = None,
                names: list[str] | None = None, check_images: bool = True) -> list[Video]:
    """The videos of ``ROOT/annotations/<split>/*.json`` in sorted file order (the first ``max_videos``,
    or those named in ``names``), each checked with :meth:`Video.check`. Raises TrackingInputError."""
    d = annotation_dir(root, split)
    files = list_json_files(str(d), sort=True)
    if names is not None:
        wanted = set(names)
        files = [f for f in files if Path(f).stem in wanted]
    if max_videos is not None:
        files = files[:max_videos]
    if not files:
        raise TrackingInputError(f"{d}: no *.json annotation files")
    videos = []
    for f in files:
        try:
            seq = load_sequence(f)
        except PoseTrackFormatError as e:
            raise TrackingInputError(str(e)) from None
        v = Video(seq.name, seq, Path(root))
        v.check(images=check_images)
        videos.append(v)
    return videos
