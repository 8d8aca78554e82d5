"""Candidate poses of one frame and where their boxes come from: GT boxes, a detection file, or GT poses
with the identities removed (the clean control). Also the box of a propagated pose (recovery, paper §5.1).

All coordinates are image pixels of the original frame; boxes are [x, y, w, h]; poses (P, 17, 3) hold
x, y, score in PoseTrack 2018 slot order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corrtrack.keypoints import NUM_JOINTS, POSETRACK_SIGMAS
from corrtrack.oks import oks_nms
from corrtrack.posetrack import load_detections
from corrtrack.posetrack.types import Frame, Person
from corrtrack.tracking.video import TrackingInputError


@dataclass
class Candidates:
    """The candidate poses of one frame, the same for every cue.

    poses: (P, 17, 3) x, y, score (image pixels); boxes: (P, 4) [x, y, w, h] (the box the pose was
    estimated in; for GT poses the GT box or the joints' extent); scores: (P,) person scores (the NMS
    order); recovered: (P,) bool, True for poses recovered from the previous frame (paper §5.1)."""

    poses: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_JOINTS, 3)))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    recovered: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        self.poses = np.asarray(self.poses, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.recovered = np.asarray(self.recovered, dtype=bool).reshape(-1)
        n = len(self.poses)
        if not (len(self.boxes) == len(self.scores) == len(self.recovered) == n):
            raise ValueError(f"Candidates: {n} poses but {len(self.boxes)} boxes, {len(self.scores)} scores, "
                             f"{len(self.recovered)} recovered flags")

    def __len__(self) -> int:
        return len(self.poses)

    def subset(self, index: np.ndarray) -> "Candidates":
        index = np.asarray(index, dtype=np.int64)
        return Candidates(self.poses[index], self.boxes[index], self.scores[index], self.recovered[index])

    @staticmethod
    def concat(parts: list["Candidates"]) -> "Candidates":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Candidates()
        return Candidates(np.concatenate([p.poses for p in parts]), np.concatenate([p.boxes for p in parts]),
                          np.concatenate([p.scores for p in parts]), np.concatenate([p.recovered for p in parts]))


# ------------------------------------------------------------------------------------------- GT inputs

def person_box(person: Person) -> np.ndarray | None:
    """The GT box of a person: its ``bbox`` when it has a positive size, else the extent of its labelled
    joints (None when fewer than two joints are labelled)."""
    if person.bbox is not None and np.all(np.isfinite(person.bbox)) and person.bbox[2] > 0 and person.bbox[3] > 0:
        return np.asarray(person.bbox, dtype=np.float64)
    pts = person.keypoints[person.present, :2]
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) < 2:
        return None
    lo, hi = pts.min(0), pts.max(0)
    if hi[0] <= lo[0] or hi[1] <= lo[1]:
        return None
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def gt_boxes(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """(P, 4) GT boxes of a frame's persons (those with a usable box) and (P,) scores of 1."""
    boxes = [b for b in (person_box(p) for p in frame.persons) if b is not None]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.ones(len(boxes))


def gt_pose_candidates(frame: Frame) -> Candidates:
    """GT poses without identities: labelled joints get score 1, the others [0, 0, 0]."""
    poses, boxes = [], []
    for p in frame.persons:
        if not p.has_points or not p.present.any():
            continue
        pose = np.zeros((NUM_JOINTS, 3))
        pose[p.present, :2] = p.keypoints[p.present, :2]
        pose[p.present, 2] = 1.0
        box = person_box(p)
        if box is None:
            xy = pose[p.present, :2]
            box = np.array([xy[:, 0].min(), xy[:, 1].min(), 0.0, 0.0])
        poses.append(pose)
        boxes.append(box)
    n = len(poses)
    return Candidates(np.asarray(poses).reshape(-1, NUM_JOINTS, 3), np.asarray(boxes).reshape(-1, 4),
                      np.ones(n), np.zeros(n, dtype=bool))


# ------------------------------------------------------------------------------------------ detections

def detection_file_for(video_name: str, detections: str | os.PathLike | None, root: str | os.PathLike,
                       split: str) -> Path:
    """The detection file of a video: ``detections`` itself when it is a file (one file for all videos),
    ``detections/<video>.json`` when it is a folder, else ``ROOT/detections/<split>/<video>.json`` (the
    synthetic world's layout). Raises TrackingInputError when it does not exist."""
    if detections is None:
        path = Path(root) / "detections" / split / f"{video_name}.json"
        hint = " (give --detections FILE_OR_FOLDER)"
    else:
        d = Path(detections)
        path = d / f"{video_name}.json" if d.is_dir() else d
        hint = ""
    if not path.is_file():
        raise TrackingInputError(f"{path}: detection file missing for video {video_name}{hint}")
    return path


def video_detections(video_name: str, detections: str | os.PathLike | None, root: str | os.PathLike, split: str,
                     min_score: float = 0.0) -> dict[int, np.ndarray]:
    """The detections of one video ({image_id: (N, 5) [x, y, w, h, score]}, best first) from the file
    :func:`detection_file_for` finds (``corrtrack.posetrack.load_detections``; errors name the file)."""
    return load_detections(detection_file_for(video_name, detections, root, split), min_score)


# --------------------------------------------------------------------------------------------- helpers

def nms(cands: Candidates, oks_threshold: float, joint_threshold: float) -> Candidates:
    """OKS-NMS (highest person score first) over a frame's candidates."""
    if len(cands) <= 1:
        return cands
    keep = oks_nms(cands.poses, cands.scores, POSETRACK_SIGMAS, oks_threshold=oks_threshold,
                   joint_threshold=joint_threshold)
    return cands.subset(np.sort(keep))


def propagated_box(points: np.ndarray, image_hw: tuple[int, int], corr_threshold: float, min_joints: int,
                   margin: float) -> np.ndarray | None:
    """The recovery box of one propagated pose (17, 3) x, y, map value in image pixels: the extent of the
    joints whose value is >= ``corr_threshold`` plus ``margin`` pixels each side, clipped to the image;
    None when fewer than ``min_joints`` joints qualify or the box is empty."""
    ok = (points[:, 2] >= corr_threshold) & np.isfinite(points[:, :2]).all(1)
    if ok.sum() < max(min_joints, 1):
        return None
    h, w = image_hw
    lo = np.maximum(points[ok, :2].min(0) - margin, 0.0)
    hi = np.minimum(points[ok, :2].max(0) + margin, [w - 1.0, h - 1.0])
    if hi[0] <= lo[0] or hi[1] <= lo[1]:
        return None
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def shifted_box(box: np.ndarray, source: np.ndarray, points: np.ndarray, image_hw: tuple[int, int],
                corr_threshold: float, min_joints: int) -> np.ndarray | None:
    """The recovery box ``recovery_box: shifted`` (ours): the source pose's own box [x, y, w, h] moved by the
    median displacement from its joints (17, 2+) to their propagated positions (17, 3: x, y, map value),
    over the joints whose value is >= ``corr_threshold``, then clipped to the image; None when fewer than
    ``min_joints`` joints qualify or the box leaves the image. Unlike the extent of the propagated joints
    (:func:`propagated_box`) it keeps the person's size when only a few joints propagate confidently."""
    ok = (points[:, 2] >= corr_threshold) & np.isfinite(points[:, :2]).all(1)
    if ok.sum() < max(min_joints, 1):
        return None
    d = np.median(points[ok, :2] - source[ok, :2], axis=0)
    h, w = image_hw
    lo = np.maximum(np.asarray(box[:2], dtype=np.float64) + d, 0.0)
    hi = np.minimum(np.asarray(box[:2], dtype=np.float64) + box[2:4] + d, [w - 1.0, h - 1.0])
    if hi[0] <= lo[0] or hi[1] <= lo[1]:
        return None
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
