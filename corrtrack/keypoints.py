"""Joint tables: COCO-17, PoseTrack 2018 slots, the 15 PoseTrack evaluation joints.

Dataset metadata is data: every name, index, sigma and flip partner lives in the one table
``JOINTS`` below; all other constants in this module are derived from it.

The synthetic world articulates a superset of both datasets ("world joints"): the 17 COCO joints
plus ``head_bottom`` (neck) and ``head_top``. COCO files store the COCO 17; PoseTrack 2018 files store
17 slots in COCO order with the eyes replaced by ``head_bottom`` / ``head_top`` and the ears unused
(always [0, 0, 0]) (docs/method.md §2, §6).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Joint:
    name: str
    coco: int | None          # slot in COCO-17, None if not a COCO joint
    posetrack: int | None     # slot in a PoseTrack 2018 file, None if the slot is unused there
    eval_id: int | None       # PoseTrack evaluation joint id (0..14), None if not evaluated
    eval_name: str | None     # name of the evaluation joint (poseval naming: ``neck`` for head_bottom)
    sigma: float              # OKS sigma (COCO values; head_bottom/head_top: see below)
    flip: str                 # name of the left/right partner (itself for central joints)


# head_bottom / head_top have no COCO sigma; we use the shoulder sigma (0.079) for both, a common choice
# in PoseTrack OKS implementations since both points are annotated with about that spread.
JOINTS: tuple[Joint, ...] = (
    Joint("nose", 0, 0, 13, "nose", 0.026, "nose"),
    Joint("left_eye", 1, None, None, None, 0.025, "right_eye"),
    Joint("right_eye", 2, None, None, None, 0.025, "left_eye"),
    Joint("left_ear", 3, 3, None, None, 0.035, "right_ear"),
    Joint("right_ear", 4, 4, None, None, 0.035, "left_ear"),
    Joint("left_shoulder", 5, 5, 9, "left_shoulder", 0.079, "right_shoulder"),
    Joint("right_shoulder", 6, 6, 8, "right_shoulder", 0.079, "left_shoulder"),
    Joint("left_elbow", 7, 7, 10, "left_elbow", 0.072, "right_elbow"),
    Joint("right_elbow", 8, 8, 7, "right_elbow", 0.072, "left_elbow"),
    Joint("left_wrist", 9, 9, 11, "left_wrist", 0.062, "right_wrist"),
    Joint("right_wrist", 10, 10, 6, "right_wrist", 0.062, "left_wrist"),
    Joint("left_hip", 11, 11, 3, "left_hip", 0.107, "right_hip"),
    Joint("right_hip", 12, 12, 2, "right_hip", 0.107, "left_hip"),
    Joint("left_knee", 13, 13, 4, "left_knee", 0.087, "right_knee"),
    Joint("right_knee", 14, 14, 1, "right_knee", 0.087, "left_knee"),
    Joint("left_ankle", 15, 15, 5, "left_ankle", 0.089, "right_ankle"),
    Joint("right_ankle", 16, 16, 0, "right_ankle", 0.089, "left_ankle"),
    Joint("head_bottom", None, 1, 12, "neck", 0.079, "head_bottom"),
    Joint("head_top", None, 2, 14, "head_top", 0.079, "head_top"),
)

NUM_JOINTS = 17          # both COCO and PoseTrack files hold 17 slots
NUM_EVAL_JOINTS = 15
WORLD_JOINT_NAMES: tuple[str, ...] = tuple(j.name for j in JOINTS)
NUM_WORLD_JOINTS = len(JOINTS)
_BY_NAME = {j.name: j for j in JOINTS}


def _slots(attr: str) -> tuple[Joint, ...]:
    table = {getattr(j, attr): j for j in JOINTS if getattr(j, attr) is not None}
    return tuple(table[i] for i in sorted(table))


COCO_JOINTS = _slots("coco")
COCO_NAMES: tuple[str, ...] = tuple(j.name for j in COCO_JOINTS)
COCO_SIGMAS = np.array([j.sigma for j in COCO_JOINTS], dtype=np.float64)

# PoseTrack 2018 files: slots 3/4 (ears) exist in the file but are never annotated.
POSETRACK_NAMES: tuple[str, ...] = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
POSETRACK_UNUSED_SLOTS: tuple[int, ...] = (3, 4)
POSETRACK_SIGMAS = np.array([_BY_NAME[n].sigma for n in POSETRACK_NAMES], dtype=np.float64)

EVAL_NAMES: tuple[str, ...] = tuple(
    j.eval_name for j in sorted((j for j in JOINTS if j.eval_id is not None), key=lambda j: j.eval_id)
)
# 2018 slot -> evaluation id (-1 = not evaluated), as in the official evaluation: [13, 12, 14, -, -, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]
POSETRACK_TO_EVAL = np.array(
    [(_BY_NAME[n].eval_id if i not in POSETRACK_UNUSED_SLOTS and _BY_NAME[n].eval_id is not None else -1)
     for i, n in enumerate(POSETRACK_NAMES)], dtype=np.int64)
# evaluation id -> 2018 slot
EVAL_TO_POSETRACK = np.array([int(np.where(POSETRACK_TO_EVAL == e)[0][0]) for e in range(NUM_EVAL_JOINTS)],
                             dtype=np.int64)

# Table columns of the PoseTrack benchmark: each averages these evaluation joints.
EVAL_GROUPS: dict[str, tuple[str, ...]] = {
    "Head": ("head_top", "neck", "nose"),
    "Shou": ("left_shoulder", "right_shoulder"),
    "Elb": ("left_elbow", "right_elbow"),
    "Wri": ("left_wrist", "right_wrist"),
    "Hip": ("left_hip", "right_hip"),
    "Knee": ("left_knee", "right_knee"),
    "Ankl": ("left_ankle", "right_ankle"),
}


def _flip_perm(names: tuple[str, ...]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.array([index.get(_BY_NAME[n].flip, i) for i, n in enumerate(names)], dtype=np.int64)


COCO_FLIP_PERM = _flip_perm(COCO_NAMES)
POSETRACK_FLIP_PERM = _flip_perm(POSETRACK_NAMES)
WORLD_FLIP_PERM = _flip_perm(WORLD_JOINT_NAMES)


def _pairs(perm: np.ndarray) -> tuple[tuple[int, int], ...]:
    return tuple((i, int(p)) for i, p in enumerate(perm) if i < p)


COCO_FLIP_PAIRS = _pairs(COCO_FLIP_PERM)
POSETRACK_FLIP_PAIRS = _pairs(POSETRACK_FLIP_PERM)


def _edges(names: tuple[str, ...], edges: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    index = {n: i for i, n in enumerate(names)}
    return tuple((index[a], index[b]) for a, b in edges if a in index and b in index)


_LIMBS = [
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
]
# 0-based edges, for drawing.
COCO_SKELETON = _edges(COCO_NAMES, _LIMBS + [
    ("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder")])
POSETRACK_SKELETON = _edges(POSETRACK_NAMES, _LIMBS + [
    ("head_top", "head_bottom"), ("head_bottom", "nose"), ("head_bottom", "left_shoulder"),
    ("head_bottom", "right_shoulder")])
WORLD_SKELETON = _edges(WORLD_JOINT_NAMES, _LIMBS + [
    ("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("head_top", "head_bottom"), ("head_bottom", "nose"),
    ("head_bottom", "left_shoulder"), ("head_bottom", "right_shoulder")])

# Gather indices from world joints (order of JOINTS) into file slots.
WORLD_TO_COCO = np.array([WORLD_JOINT_NAMES.index(n) for n in COCO_NAMES], dtype=np.int64)
WORLD_TO_POSETRACK = np.array([WORLD_JOINT_NAMES.index(n) for n in POSETRACK_NAMES], dtype=np.int64)


def coco_skeleton_1based() -> list[list[int]]:
    """The COCO ``categories[0].skeleton`` field (1-based joint indices)."""
    return [[a + 1, b + 1] for a, b in COCO_SKELETON]


def posetrack_skeleton_1based() -> list[list[int]]:
    """The PoseTrack 2018 ``categories[0].skeleton`` field (1-based slot indices)."""
    return [[a + 1, b + 1] for a, b in POSETRACK_SKELETON]


def layout(name: str) -> dict:
    """Metadata of a keypoint layout ``"coco"`` or ``"posetrack"``: names, sigmas, flip_perm, skeleton."""
    if name == "coco":
        return {"names": COCO_NAMES, "sigmas": COCO_SIGMAS, "flip_perm": COCO_FLIP_PERM,
                "skeleton": COCO_SKELETON}
    if name == "posetrack":
        return {"names": POSETRACK_NAMES, "sigmas": POSETRACK_SIGMAS, "flip_perm": POSETRACK_FLIP_PERM,
                "skeleton": POSETRACK_SKELETON}
    raise ValueError(f"unknown keypoint layout {name!r}; expected 'coco' or 'posetrack'")


def coco_to_posetrack(kpts: np.ndarray) -> np.ndarray:
    """Map (..., 17, 3) COCO keypoints to PoseTrack 2018 slots.

    Joints both share are copied; head_bottom/head_top do not exist in COCO and are left [0, 0, 0]
    (fine-tuning on PoseTrack teaches them, paper §6.1), as are the unused ear slots.
    """
    kpts = np.asarray(kpts)
    out = np.zeros_like(kpts)
    coco_index = {n: i for i, n in enumerate(COCO_NAMES)}
    for slot, name in enumerate(POSETRACK_NAMES):
        if slot in POSETRACK_UNUSED_SLOTS:
            continue
        if name in coco_index:
            out[..., slot, :] = kpts[..., coco_index[name], :]
    return out


def posetrack_to_eval(kpts: np.ndarray) -> np.ndarray:
    """Gather (..., 17, C) PoseTrack 2018 slots into (..., 15, C) evaluation-joint order."""
    return np.asarray(kpts)[..., EVAL_TO_POSETRACK, :]
