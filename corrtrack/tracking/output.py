"""Tracking output: the joint detection threshold, the minimum track length and the PoseTrack 2018
prediction of a video (one file per video, named like its GT file, as the official evaluation expects);
and a rendering of the tracks as an MP4.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from corrtrack.keypoints import POSETRACK_SKELETON
from corrtrack.posetrack.io import save_2018
from corrtrack.posetrack.types import Frame, Person, Sequence

MAX_TRACK_ID = 9999          # poseval: track ids below 10000


def thresholded_pose(pose: np.ndarray, joint_threshold: float) -> np.ndarray | None:
    """(17, 3) x, y, score -> the pose with joints scoring below ``joint_threshold`` removed (set to
    [0, 0, 0]); None when no joint is left. Joints with score 0 are always removed."""
    keep = (pose[:, 2] >= joint_threshold) & (pose[:, 2] > 0) & np.isfinite(pose[:, :2]).all(1)
    if not keep.any():
        return None
    return np.where(keep[:, None], pose, 0.0)


def output_persons(result) -> dict[int, list[tuple[int, np.ndarray, int]]]:
    """{video frame: [(track id, thresholded pose (17, 3), candidate index)]} after the joint threshold
    and the minimum track length; track ids renumbered 1, 2, ... in order of first appearance."""
    cfg, cache = result.config, result.cache
    kept: dict[int, list[tuple[int, np.ndarray, int]]] = {}
    length: dict[int, int] = {}
    for f in cache.frames:
        rows = []
        for c, tid in enumerate(result.ids[f]):
            if tid < 0:
                continue
            pose = thresholded_pose(cache.candidates[f].poses[c], cfg.joint_threshold)
            if pose is None:
                continue
            rows.append((int(tid), pose, c))
            length[int(tid)] = length.get(int(tid), 0) + 1
        kept[f] = rows
    renumber: dict[int, int] = {}
    out: dict[int, list[tuple[int, np.ndarray, int]]] = {}
    for f in cache.frames:
        out[f] = []
        for tid, pose, c in kept[f]:
            if length[tid] < cfg.min_track_length:
                continue
            if tid not in renumber:
                renumber[tid] = len(renumber) + 1
            out[f].append((renumber[tid], pose, c))
    if len(renumber) > MAX_TRACK_ID:
        raise ValueError(f"video {cache.video.name}: {len(renumber)} tracks, more than PoseTrack's track ids "
                         f"allow (< 10000)")
    return out


def to_sequence(result) -> Sequence:
    """The PoseTrack 2018 prediction of one tracked video: every GT frame (file name, image id, labels,
    ignore regions copied, so frames pair by position), with per person ``keypoints`` [x, y, 1] for the
    kept joints ([0, 0, 0] for removed ones), ``scores`` per joint, ``track_id``, the candidate's box and
    person score."""
    cache = result.cache
    gt = cache.video.gt
    persons = output_persons(result)
    frames = []
    for i, g in enumerate(gt.frames):
        fr = Frame(file_name=g.file_name, image_id=g.image_id, persons=[], is_labeled=g.is_labeled,
                   ignore_regions=list(g.ignore_regions))
        for tid, pose, c in persons.get(i, []):
            kp = pose.copy()
            present = kp[:, 2] > 0
            kp[present, 2] = 1.0
            cands = cache.candidates[i]
            fr.persons.append(Person(keypoints=kp, track_id=tid, scores=pose[:, 2].copy(),
                                     bbox=cands.boxes[c].copy(), score=float(cands.scores[c]),
                                     present=present))
        frames.append(fr)
    return Sequence(name=gt.name, frames=frames, format="2018", vid_id=gt.vid_id)


def write_prediction(seq: Sequence, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/<video>.json`` (PoseTrack 2018); returns the path."""
    path = Path(out_dir) / f"{seq.name}.json"
    save_2018(seq, str(path))
    return path


# -------------------------------------------------------------------------------------------- render

def track_color(track_id: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour per track id (golden-ratio hues)."""
    h = (track_id * 0.618033988749895) % 1.0
    hsv = np.uint8([[[int(h * 179), 220, 255]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def draw_frame(image: np.ndarray, persons: list[tuple[int, np.ndarray, bool]], frame_index: int,
               num_frames: int, title: str = "") -> np.ndarray:
    """Draw (track id, pose (17, 3), recovered) persons on a copy of an (H, W, 3) RGB frame: skeletons
    coloured by track id, a label ``id N`` (``id N R`` and a white outline for recovered poses), and the
    frame number in a banner."""
    img = image.copy()
    for tid, pose, recovered in persons:
        color = track_color(tid)
        ok = pose[:, 2] > 0
        for a, b in POSETRACK_SKELETON:
            if ok[a] and ok[b]:
                pa = (int(round(pose[a, 0])), int(round(pose[a, 1])))
                pb = (int(round(pose[b, 0])), int(round(pose[b, 1])))
                if recovered:
                    cv2.line(img, pa, pb, (255, 255, 255), 4, cv2.LINE_AA)
                cv2.line(img, pa, pb, color, 2, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(img, (int(round(pose[j, 0])), int(round(pose[j, 1]))), 3, color, -1, cv2.LINE_AA)
        if ok.any():
            x, y = pose[ok, 0].min(), pose[ok, 1].min()
            label = f"id {tid}" + (" R" if recovered else "")
            cv2.putText(img, label, (int(x), max(int(y) - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3,
                        cv2.LINE_AA)
            cv2.putText(img, label, (int(x), max(int(y) - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1,
                        cv2.LINE_AA)
    cv2.rectangle(img, (0, 0), (img.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(img, f"frame {frame_index + 1}/{num_frames} {title}", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 255), 1, cv2.LINE_AA)
    return img


def render_video(result, path: str | os.PathLike, fps: float = 10.0) -> Path:
    """An MP4 (OpenCV ``mp4v``) of every frame of the video with the output tracks drawn (recovered poses
    marked 'R' with a white outline). Returns the path."""
    cache = result.cache
    video = cache.video
    persons = output_persons(result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    try:
        for i in range(len(video)):
            img = video.image(i)
            rows = [(tid, pose, bool(cache.candidates[i].recovered[c])) for tid, pose, c in persons.get(i, [])]
            frame = draw_frame(img, rows, i, len(video), f"{video.name} cue={result.cue}")
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
                if not writer.isOpened():
                    raise OSError(f"{path}: OpenCV cannot open an MP4 writer")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    return path

