"""Dense optical flow (OpenCV DIS; no downloaded weights) and warping poses by flow: the optical-flow
baseline of paper §6.2 (Table 2) (the paper uses PWC-Net; this is the weight-free stand-in, named "DIS" in tables)."""
from __future__ import annotations

import cv2
import numpy as np

_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def _gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        g = img
    elif img.ndim == 3 and img.shape[2] == 3:
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    else:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {img.shape}")
    if g.dtype != np.uint8:
        g = np.clip(g, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(g)


def dis_flow(img_a: np.ndarray, img_b: np.ndarray, preset: str = "medium", max_side: int | None = None
             ) -> np.ndarray:
    """Dense flow from frame a to frame b with OpenCV's DIS: (H, W, 2) float32 (dx, dy) in image pixels,
    such that pixel (x, y) of a is at (x + dx, y + dy) in b.

    Images: (H, W, 3) RGB or (H, W) gray, uint8, same size. ``preset``: "ultrafast" | "fast" | "medium".
    ``max_side``: compute on a copy downscaled so its longer side is at most this (faster on large
    frames); the flow is rescaled to full resolution."""
    if img_a.shape[:2] != img_b.shape[:2]:
        raise ValueError(f"dis_flow: frames differ in size {img_a.shape[:2]} vs {img_b.shape[:2]}")
    if preset not in _PRESETS:
        raise ValueError(f"dis_flow: preset must be one of {sorted(_PRESETS)} (got {preset!r})")
    ga, gb = _gray(img_a), _gray(img_b)
    h, w = ga.shape
    scale = 1.0
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        ga = cv2.resize(ga, size, interpolation=cv2.INTER_AREA)
        gb = cv2.resize(gb, size, interpolation=cv2.INTER_AREA)
    dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
    flow = dis.calc(ga, gb, None)
    if scale != 1.0:
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) / scale
    return flow.astype(np.float32)


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear flow (H, W, 2) at (..., 2) points (image pixels; clamped to the frame) -> (..., 2)."""
    h, w = flow.shape[:2]
    pts = np.asarray(points, dtype=np.float64)[..., :2]
    x = np.clip(np.nan_to_num(pts[..., 0]), 0, w - 1)
    y = np.clip(np.nan_to_num(pts[..., 1]), 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    f = flow.astype(np.float64)
    return ((1 - fx) * (1 - fy) * f[y0, x0] + fx * (1 - fy) * f[y0, x1]
            + (1 - fx) * fy * f[y1, x0] + fx * fy * f[y1, x1])


def warp_poses_by_flow(poses: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Move (P, J, 2|3) poses of frame a (image pixels) by the flow a -> b; extra columns (score,
    visibility) pass through unchanged, and so do joints with score/visibility 0 (absent)."""
    p = np.asarray(poses, dtype=np.float64)
    out = p.copy()
    if p.size == 0:
        return out
    moved = p[..., :2] + sample_flow(flow, p[..., :2])
    keep = np.isfinite(p[..., :2]).all(-1)
    if p.shape[-1] >= 3:
        keep &= p[..., 2] > 0
    out[..., :2] = np.where(keep[..., None], moved, p[..., :2])
    return out
