"""Affine geometry shared by data synthesis, training pairs, top-down crops and tracking.

Conventions: an affine is a (2, 3) float64 matrix ``M`` mapping source pixel coordinates to target
pixel coordinates, ``[x', y'] = M @ [x, y, 1]`` — the same convention as ``cv2.warpAffine``. Points are
pixel centres in (x, y) order. Boxes are ``[x, y, w, h]`` (COCO) unless a name says ``xyxy``.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def to_3x3(m: np.ndarray) -> np.ndarray:
    """(2, 3) affine -> (3, 3) homogeneous matrix."""
    out = np.eye(3, dtype=np.float64)
    out[:2] = m
    return out


def compose(*mats: np.ndarray) -> np.ndarray:
    """Compose affines; ``compose(A, B)`` applies B first, then A. Returns (2, 3)."""
    out = np.eye(3, dtype=np.float64)
    for m in mats:
        out = out @ to_3x3(m)
    return out[:2]


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def affine_matrix(center: tuple[float, float], angle_deg: float = 0.0, scale: float = 1.0,
                  translate: tuple[float, float] = (0.0, 0.0), flip: bool = False,
                  flip_width: float | None = None) -> np.ndarray:
    """Rotation by ``angle_deg`` (counter-clockwise on screen) and scaling about ``center``, then a
    translation, then an optional horizontal flip of an image of width ``flip_width`` (x -> W - 1 - x).
    Returns (2, 3)."""
    m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle_deg), float(scale))
    m = m.astype(np.float64)
    m[:, 2] += np.asarray(translate, dtype=np.float64)
    if flip:
        if flip_width is None:
            raise ValueError("flip=True needs flip_width (the output image width)")
        f = np.array([[-1.0, 0.0, flip_width - 1.0], [0.0, 1.0, 0.0]])
        m = compose(f, m)
    return m


def warp_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (..., 2) or (..., >=2) points; extra columns (scores, v) pass through."""
    pts = np.asarray(points, dtype=np.float64)
    out = pts.copy()
    xy = pts[..., :2]
    out[..., :2] = xy @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]
    return out


def warp_boxes(boxes: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Warp (N, 4) ``[x, y, w, h]`` boxes; returns the axis-aligned boxes around the warped corners."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    corners = np.stack([np.c_[x0, y0], np.c_[x1, y0], np.c_[x0, y1], np.c_[x1, y1]], axis=1)
    w = warp_points(corners, m)
    lo, hi = w.min(axis=1), w.max(axis=1)
    return np.concatenate([lo, hi - lo], axis=1)


def box_from_points(points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """[x, y, w, h] extent of (K, 2+) points (rows with non-finite xy ignored) plus ``margin`` px each
    side. Raises ValueError when no point is finite."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) == 0:
        raise ValueError("box_from_points: no finite points")
    lo, hi = p.min(axis=0) - margin, p.max(axis=0) + margin
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def crop_affine(box: np.ndarray, out_size: tuple[int, int], padding: float = 1.25,
                angle_deg: float = 0.0, scale: float = 1.0, flip: bool = False,
                shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Top-down crop: the affine mapping original-image pixels into an ``out_size = (H, W)`` crop that
    holds ``box`` ([x, y, w, h]) at the crop's aspect ratio, enlarged by ``padding``.

    ``scale`` > 1 zooms out (more context), ``angle_deg`` rotates about the box centre, ``shift`` moves
    the box centre by a fraction of its size (box jitter), ``flip`` mirrors the crop. Returns (2, 3).
    """
    h_out, w_out = out_size
    x, y, w, h = [float(v) for v in box]
    cx, cy = x + w / 2 + shift[0] * w, y + h / 2 + shift[1] * h
    aspect = w_out / h_out
    w, h = max(w, 1.0), max(h, 1.0)
    if w / h > aspect:
        h = w / aspect
    else:
        w = h * aspect
    src_w = w * padding * scale
    s = w_out / src_w
    # move centre to origin, rotate+scale, move to crop centre
    m = affine_matrix((cx, cy), angle_deg, s, translate=((w_out - 1) / 2 - cx, (h_out - 1) / 2 - cy))
    if flip:
        m = compose(np.array([[-1.0, 0.0, w_out - 1.0], [0.0, 1.0, 0.0]]), m)
    return m


def letterbox_affine(image_hw: tuple[int, int], out_size: int) -> np.ndarray:
    """Affine that fits a whole (H, W) image into an ``out_size`` x ``out_size`` square, keeping the aspect
    ratio and centring it (the release's 512x512 letterbox for recovery, docs/method.md §3). Returns (2, 3)."""
    h, w = image_hw
    s = out_size / max(h, w)
    tx, ty = (out_size - w * s) / 2, (out_size - h * s) / 2
    return np.array([[s, 0.0, tx], [0.0, s, ty]])


def warp_image(image: np.ndarray, m: np.ndarray, out_size: tuple[int, int],
               border_value: int | tuple = 0, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``cv2.warpAffine`` with ``out_size = (H, W)``; pixels from outside the source get ``border_value``."""
    h, w = out_size
    return cv2.warpAffine(image, np.asarray(m, dtype=np.float64), (int(w), int(h)), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def inside(points: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Boolean mask of (..., 2+) points lying inside an image of size (H, W) (pixel centres, so
    -0.5 <= x < W - 0.5)."""
    p = np.asarray(points, dtype=np.float64)
    h, w = size_hw
    return (p[..., 0] >= -0.5) & (p[..., 0] < w - 0.5) & (p[..., 1] >= -0.5) & (p[..., 1] < h - 0.5)


def rotation_deg(m: np.ndarray) -> float:
    """Rotation angle (degrees, counter-clockwise on screen) of the linear part of an affine."""
    return math.degrees(math.atan2(-m[1, 0], m[0, 0]))
