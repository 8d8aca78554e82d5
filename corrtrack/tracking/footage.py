"""A plain video file without labels as a video to track (``python -m corrtrack.track --video FILE``):
frames decoded with OpenCV, person boxes from OpenCV's HOG people detector (no download: its linear SVM
ships inside OpenCV) or from a user's detection file, a COCO results JSON or a MOT Challenge ``det.txt``.

Frame conventions: frames are numbered from 0 in decoding order. Detections are keyed by this 0-based
frame index: a COCO results file's ``image_id`` IS the 0-based frame index; a MOT ``det.txt`` counts frames
from 1 (its frame 1 is frame 0 here). The prediction file (PoseTrack 2018) has one image per decoded
frame, ``file_name`` ``<video stem>/NNNNNN.jpg`` with NNNNNN the 0-based frame index (what
``ffmpeg -i FILE -start_number 0 <video stem>/%06d.jpg`` writes) and ``id`` / ``frame_id`` the frame
index. Boxes are [x, y, w, h] in the pixels of the original frame.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np

from corrtrack.posetrack.detections import load_detections, load_mot_detections
from corrtrack.posetrack.types import Frame, PoseTrackFormatError, Sequence
from corrtrack.tracking.config import TrackingConfig
from corrtrack.tracking.video import TrackingInputError, Video

log = logging.getLogger("corrtrack.tracking.footage")

# The HOG people detector's 64x128 window holds a person about 96 pixels tall with margins on every side;
# its boxes are trimmed by these shares of their width / height on each side so that they hug the person
# the way the boxes the pose estimator was trained on do (measured on OpenCV's vtest.avi: a person 28 x 87
# pixels sat in a 58 x 116 box).
HOG_TRIM = (0.2, 0.1)
HOG_PADDING = (8, 8)         # pixels of padding around each detection window (OpenCV's usual value)


def _capture(path: Path) -> cv2.VideoCapture:
    """An opened OpenCV capture of ``path``; TrackingInputError naming the file when it is missing or
    OpenCV cannot open it."""
    if not path.exists():
        raise TrackingInputError(f"{path}: video file not found")
    if not path.is_file():
        raise TrackingInputError(f"{path}: not a video file (a folder?)")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise TrackingInputError(f"{path}: OpenCV cannot open it as a video (unsupported or corrupt file)")
    return cap


class FootageVideo(Video):
    """A video file as a :class:`~corrtrack.tracking.video.Video`: ``gt`` is an unlabelled sequence with one
    frame per decoded frame (file names and image ids as in the module docstring), ``image(i)`` decodes
    frame i. Reads are sequential (the tracker and the renderer step forward); going back reopens the file.
    """

    def __init__(self, path: str | os.PathLike, num_frames: int, fps: float, size_hw: tuple[int, int]):
        self.path = Path(path)
        self.fps = float(fps)
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        name = self.path.stem
        frames = [Frame(file_name=f"{name}/{i:06d}.jpg", image_id=i, width=self.size_hw[1],
                        height=self.size_hw[0]) for i in range(int(num_frames))]
        super().__init__(name, Sequence(name=name, frames=frames, format="2018", vid_id=name), self.path.parent)
        self._cap: cv2.VideoCapture | None = None
        self._next = 0                                   # index of the frame the capture decodes next
        self._last: tuple[int, np.ndarray] | None = None

    def image_path(self, index: int) -> Path:
        return self.path

    def image(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based) as (H, W, 3) uint8 RGB. Raises TrackingInputError naming the file."""
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        if not 0 <= index < len(self):
            raise IndexError(f"{self.path}: frame {index} out of range (0..{len(self) - 1})")
        if self._cap is None or index < self._next:
            self.close()
            self._cap, self._next = _capture(self.path), 0
        while self._next < index:
            if not self._cap.grab():
                break
            self._next += 1
        ok, bgr = self._cap.read() if self._next == index else (False, None)
        if not ok or bgr is None:
            raise TrackingInputError(f"{self.path}: frame {index} cannot be decoded (the file changed or is "
                                     f"truncated?)")
        self._next += 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._last = (index, rgb)
        return rgb

    def head(self, num_frames: int) -> "FootageVideo":
        """The same file cut to its first ``num_frames`` frames."""
        return FootageVideo(self.path, min(max(int(num_frames), 0), len(self)), self.fps, self.size_hw)

    def close(self) -> None:
        """Release the decoder (a later ``image`` call reopens the file)."""
        if self._cap is not None:
            self._cap.release()
        self._cap, self._next, self._last = None, 0, None

    def check(self, images: bool = True) -> None:
        if len(self) == 0:
            raise TrackingInputError(f"{self.path}: the video has no frames OpenCV can decode")


# --------------------------------------------------------------------------------------- the detector

def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy box NMS: indices (best first) of the (N, 4) [x, y, w, h] boxes kept, a box being dropped
    when its IoU with a kept, higher-scoring box exceeds ``iou_threshold``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    keep: list[int] = []
    for i in order:
        if keep:
            k = np.asarray(keep)
            iw = np.clip(np.minimum(x1[i], x1[k]) - np.maximum(x0[i], x0[k]), 0, None)
            ih = np.clip(np.minimum(y1[i], y1[k]) - np.maximum(y0[i], y0[k]), 0, None)
            inter = iw * ih
            iou = inter / np.maximum(area[i] + area[k] - inter, 1e-12)
            if (iou > iou_threshold).any():
                continue
        keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


def margin_score(margin: np.ndarray) -> np.ndarray:
    """The HOG detector's SVM margins as scores in (0, 1): the logistic function, so 0.5 is the SVM's own
    decision boundary (margin 0) and ``detection_min_score`` 0.5 keeps what HOG calls a person. Not a
    calibrated probability."""
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))


class HOGPeopleDetector:
    """OpenCV's HOG people detector (Dalal & Triggs' linear SVM on 64x128 windows, shipped with OpenCV),
    with the settings ``hog_*`` of a :class:`TrackingConfig`."""

    def __init__(self, config: TrackingConfig):
        if not hasattr(cv2, "HOGDescriptor"):
            raise TrackingInputError(f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 moved it "
                                     "out of the main modules): install opencv-python-headless<5 as setup.cfg "
                                     "asks, or pass --detections FILE")
        self.config = config
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Person boxes of one (H, W, 3) uint8 frame -> (N, 5) [x, y, w, h, score] in the frame's pixels,
        best first, after the trim (HOG_TRIM) and box NMS; scores from :func:`margin_score`."""
        cfg = self.config
        h, w = image.shape[:2]
        up = float(cfg.hog_upscale)
        img = image if up == 1.0 else cv2.resize(image, (max(round(w * up), 1), max(round(h * up), 1)),
                                                 interpolation=cv2.INTER_LINEAR)
        if img.shape[0] < 128 or img.shape[1] < 64:                    # smaller than one detection window
            return np.zeros((0, 5))
        rects, margins = self.hog.detectMultiScale(img, hitThreshold=0.0, winStride=(cfg.hog_stride,) * 2,
                                                   padding=HOG_PADDING, scale=cfg.hog_scale)
        if len(rects) == 0:
            return np.zeros((0, 5))
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / up
        tx, ty = HOG_TRIM
        boxes[:, 0] += tx * boxes[:, 2]
        boxes[:, 1] += ty * boxes[:, 3]
        boxes[:, 2] *= 1.0 - 2 * tx
        boxes[:, 3] *= 1.0 - 2 * ty
        lo = np.clip(boxes[:, :2], 0, [w, h])
        hi = np.clip(boxes[:, :2] + boxes[:, 2:], 0, [w, h])
        boxes = np.concatenate([lo, hi - lo], axis=1)
        scores = margin_score(np.asarray(margins, dtype=np.float64).reshape(-1))
        keep = box_nms(boxes, scores, cfg.hog_nms_iou)
        out = np.concatenate([boxes[keep], scores[keep, None]], axis=1)
        return out[(out[:, 2] > 1) & (out[:, 3] > 1)]


# ------------------------------------------------------------------------------------------ opening

def scan_video(path: str | os.PathLike, max_frames: int | None = None, detector=None,
               progress: bool = True) -> tuple[FootageVideo, dict[int, np.ndarray] | None]:
    """Decode ``path`` once (the first ``max_frames`` frames): the :class:`FootageVideo` (frame count, size,
    frame rate) and, with a ``detector`` (a callable frame -> (N, 5)), its boxes per frame
    ({frame index: (N, 5) [x, y, w, h, score]}). TrackingInputError naming the file when it is missing,
    cannot be opened or has no decodable frame."""
    from tqdm import tqdm

    path = Path(path)
    cap = _capture(path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    dets: dict[int, np.ndarray] | None = {} if detector is not None else None
    n, size = 0, None
    desc = "detecting people (HOG)" if detector is not None else "reading frames"
    try:
        with tqdm(total=total, desc=desc, unit="frame", leave=False, disable=not progress) as bar:
            while max_frames is None or n < max_frames:
                if detector is None and size is not None:
                    if not cap.grab():                           # counting only: no colour conversion
                        break
                else:
                    ok, bgr = cap.read()
                    if not ok or bgr is None:
                        break
                    size = bgr.shape[:2]
                    if detector is not None:
                        dets[n] = detector(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                n += 1
                bar.update(1)
    finally:
        cap.release()
    if n == 0:
        raise TrackingInputError(f"{path}: the video has no frames OpenCV can decode (empty or not a video)")
    if not (fps and math.isfinite(fps) and fps > 0):
        fps = 25.0
    return FootageVideo(path, n, fps, size), dets


def load_detection_file(path: str | os.PathLike, num_frames: int, min_score: float = 0.0) -> dict[int, np.ndarray]:
    """The detections of a user's file -> {0-based frame index: (N, 5) [x, y, w, h, score]}, best first: a
    COCO results JSON (a list of {"image_id": frame index from 0, "bbox", "score"}) or a MOT ``det.txt``
    (frames from 1), told apart by their first character. Detections on frames past the video's end are
    dropped with a warning (a 1-based COCO file shows up that way). Errors name the file (and the field or
    line)."""
    path = Path(path)
    if not path.is_file():
        raise TrackingInputError(f"{path}: detection file not found" if not path.exists() else
                                 f"{path}: not a detection file (a folder?); give one COCO results JSON or "
                                 "MOT det.txt")
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip()
        if head[:1] in (b"[", b"{"):
            dets = load_detections(path, min_score)
        elif not head:
            raise PoseTrackFormatError("empty file (expected a COCO results JSON list or MOT det.txt lines)",
                                       str(path))
        else:
            dets = load_mot_detections(path, min_score)
    except PoseTrackFormatError as e:
        raise TrackingInputError(str(e)) from None
    late = sorted(k for k in dets if not 0 <= k < num_frames)
    if late:
        count = sum(len(dets.pop(k)) for k in late)
        log.warning(f"{path}: {count} detection(s) on frame(s) {late[0]}..{late[-1]} outside the video's "
                    f"{num_frames} frames were dropped (COCO image ids are 0-based frame indices, MOT frames "
                    "1-based)")
    return dets


def open_footage(path: str | os.PathLike, config: TrackingConfig, detections: str | os.PathLike | None = None,
                 max_frames: int | None = None, progress: bool = True
                 ) -> tuple[FootageVideo, dict[int, np.ndarray], str]:
    """A video file ready to track: (video, {frame index: (N, 5) boxes}, where the boxes come from: "hog" or
    the detection file's path). Without ``detections`` the HOG people detector runs over the frames as
    they are read."""
    if detections is None:
        video, dets = scan_video(path, max_frames, HOGPeopleDetector(config), progress)
        return video, dets, "hog"
    if not Path(detections).exists():                 # before decoding a long video
        raise TrackingInputError(f"{detections}: detection file not found")
    video, _ = scan_video(path, max_frames, None, progress)
    return video, load_detection_file(detections, len(video)), str(detections)
