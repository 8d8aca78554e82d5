"""Object keypoint similarity (COCO definition) and OKS-based non-maximum suppression."""
from __future__ import annotations

import numpy as np


def oks_matrix(a: np.ndarray, b: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
               min_score: float = 0.0) -> np.ndarray:
    """OKS between every pose of ``a`` and every pose of ``b``.

    a: (P, J, 3) reference poses (x, y, score-or-visibility) in image pixels; joints of ``a`` with third
    value <= ``min_score`` are not counted. b: (Q, J, 2+) candidate poses in the same frame.
    areas: (P,) object areas of ``a`` (COCO: segment area; for poses, box area is customary).
    sigmas: (J,) per-joint sigmas. Returns (P, Q) in [0, 1]; a reference pose without counted joints
    has OKS 0 with everything.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2                    # (J,)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)                 # (P, Q, J)
    area = np.maximum(np.asarray(areas, dtype=np.float64), np.finfo(np.float64).eps)
    e = d2 / (var[None, None, :] * area[:, None, None] * 2.0)
    valid = (a[:, :, 2] > min_score)[:, None, :]                                 # (P, 1, J)
    sim = np.where(valid, np.exp(-e), 0.0).sum(-1)
    count = valid.sum(-1)
    return np.where(count > 0, sim / np.maximum(count, 1), 0.0)


def pose_area(poses: np.ndarray, min_score: float = 0.0) -> np.ndarray:
    """(P,) area of the box around each (P, J, 3) pose's joints scoring above ``min_score``."""
    poses = np.asarray(poses, dtype=np.float64)
    out = np.zeros(len(poses))
    for i, p in enumerate(poses):
        v = p[p[:, 2] > min_score, :2]
        if len(v):
            wh = v.max(0) - v.min(0)
            out[i] = wh[0] * wh[1]
    return out


def oks_nms(poses: np.ndarray, scores: np.ndarray, sigmas: np.ndarray, oks_threshold: float = 0.7,
            joint_threshold: float = 0.05, areas: np.ndarray | None = None) -> np.ndarray:
    """Greedy OKS-NMS: keep the highest-scoring pose, drop every remaining pose whose OKS with it
    exceeds ``oks_threshold``, repeat. Joints scoring <= ``joint_threshold`` are not compared.

    poses: (P, J, 3) in image pixels; scores: (P,). Returns the kept indices, best first.
    """
    poses = np.asarray(poses, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    if areas is None:
        areas = pose_area(poses, joint_threshold)
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        if len(order) == 1:
            break
        rest = order[1:]
        o = oks_matrix(poses[i:i + 1], poses[rest], np.asarray(areas)[i:i + 1], sigmas,
                       min_score=joint_threshold)[0]
        order = rest[o <= oks_threshold]
    return np.asarray(keep, dtype=np.int64)
