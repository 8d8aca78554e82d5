"""Turn rendered scenes into COCO / PoseTrack 2018 annotations and simulated detections.

Which people are annotated (both datasets):

* far crowd members never are (in videos an ignore region covers them);
* a person less than ``min_visible_frac`` visible (hidden behind others) or with too few pixels is
  not annotated on that image / frame, as annotators skip people they cannot see;
* COCO keypoints carry v = 0 (outside the image), 1 (covered by a nearer person or object, or a face
  point on the far side of the head), 2 (visible); PoseTrack marks every joint inside the image as
  labelled (v = 1, occluded or not, like the real data) and joints outside the image as [0, 0, 0].

PoseTrack files must also pass the official evaluation GT-vs-GT at mAP 100 / MOTA 100, so on each
labelled frame: every person keeps at least one joint outside the ignore regions, head boxes are
non-degenerate, and no person's labelled joints all lie within another person's PCKh threshold
(poseval would assign both predictions to one GT); the less visible of such a pair is not annotated.
"""

from __future__ import annotations

import cv2
import numpy as np

from corrtrack import keypoints as K
from corrtrack.posetrack.types import head_size
from corrtrack.synth.render import ItemStats, PersonView, joint_visibility

EVAL_SLOTS = np.array([s for s in range(K.NUM_JOINTS) if s not in K.POSETRACK_UNUSED_SLOTS])
BODY_JOINTS = np.array(
    [
        K.WORLD_JOINT_NAMES.index(n)
        for n in (
            "left_shoulder",
            "right_shoulder",
            "left_elbow",
            "right_elbow",
            "left_wrist",
            "right_wrist",
            "left_hip",
            "right_hip",
            "left_knee",
            "right_knee",
            "left_ankle",
            "right_ankle",
            "head_top",
            "nose",
        )
    ]
)


def _r(x: float) -> float:
    return round(float(x), 2)


def xyxy_to_xywh(b: np.ndarray) -> list[float]:
    """Inclusive pixel box (x0, y0, x1, y1) -> COCO [x, y, w, h] covering those pixels."""
    return [_r(b[0]), _r(b[1]), _r(b[2] - b[0] + 1), _r(b[3] - b[1] + 1)]


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons (each a flat [x1, y1, x2, y2, ...] with >= 3 points) outlining a binary mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.8, True).reshape(-1, 2)
        if len(c) >= 3 and cv2.contourArea(c.astype(np.float32)) >= 1.0:
            polys.append([float(v) for v in c.reshape(-1)])
    return polys


def coco_person(
    view: PersonView, st: ItemStats, rank: np.ndarray, min_visible_frac: float, min_height: float = 24.0
) -> dict | None:
    """COCO annotation fields of one person (no ``id`` / ``image_id``), or None when not annotated.

    ``keypoints`` are the 17 COCO joints ``[x, y, v]`` in image pixels; ``bbox`` / ``area`` /
    ``segmentation`` describe the visible silhouette, as in COCO.
    """
    if not view.annotate or st.visible_px < 30 or st.amodal_px == 0 or view.height_px < min_height:
        return None
    if st.visible_px < min_visible_frac * st.amodal_px:
        return None
    vis = joint_visibility(view, st.rank, rank)
    kp = np.zeros((K.NUM_JOINTS, 3))
    for c, j in enumerate(K.WORLD_TO_COCO):
        if vis[j] > 0:
            kp[c] = (_r(view.joints[j, 0]), _r(view.joints[j, 1]), vis[j])
    n = int((kp[:, 2] > 0).sum())
    if n == 0 or st.visible_box is None:
        return None
    mask = rank == st.rank
    return {
        "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(kp.reshape(-1))],
        "num_keypoints": n,
        "bbox": xyxy_to_xywh(st.visible_box),
        "area": float(st.visible_px),
        "iscrowd": 0,
        "category_id": 1,
        "segmentation": mask_polygons(mask),
    }


def posetrack_person(
    view: PersonView, st: ItemStats, rank: np.ndarray, min_visible_frac: float
) -> tuple[dict, list[int]] | None:
    """PoseTrack 2018 fields of one person on a labelled frame and its 17 visibility flags, or None.

    ``keypoints``: 17 slots ``[x, y, 1]`` for joints inside the image, ``[0, 0, 0]`` otherwise (and for the
    unused ear slots); ``bbox``: the person's full (amodal) extent clipped to the image; ``bbox_head``:
    the head's box. The flags are 0 / 1 / 2 as in COCO, in PoseTrack slot order.
    """
    if not view.annotate or st.amodal_px == 0 or st.visible_px < 25 or st.amodal_box is None:
        return None
    if st.visible_px < min_visible_frac * st.amodal_px:
        return None
    vis = joint_visibility(view, st.rank, rank)
    kp = np.zeros((K.NUM_JOINTS, 3))
    flags = [0] * K.NUM_JOINTS
    for s, j in enumerate(K.WORLD_TO_POSETRACK):
        if s in K.POSETRACK_UNUSED_SLOTS or vis[j] == 0:
            continue
        kp[s] = (_r(view.joints[j, 0]), _r(view.joints[j, 1]), 1)
        flags[s] = int(vis[j])
    if int((kp[EVAL_SLOTS, 2] > 0).sum()) < 2:
        return None
    hb = view.head_box
    head = [_r(hb[0]), _r(hb[1]), _r(max(hb[2] - hb[0], 1.0)), _r(max(hb[3] - hb[1], 1.0))]
    return (
        {
            "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(kp.reshape(-1))],
            "bbox": xyxy_to_xywh(st.amodal_box),
            "bbox_head": head,
            "category_id": 1,
            "_visible_frac": st.visible_px / st.amodal_px,
        },
        flags,
    )


def _inside_any(x: float, y: float, polys: list[np.ndarray]) -> bool:
    return any(cv2.pointPolygonTest(p.astype(np.float32), (float(x), float(y)), False) > 0 for p in polys)


def drop_fully_ignored(anns: list[dict], polys: list[np.ndarray]) -> list[dict]:
    """Remove annotations all of whose labelled joints lie strictly inside an ignore polygon."""
    if not polys:
        return anns
    keep = []
    for a in anns:
        kp = np.asarray(a["keypoints"]).reshape(-1, 3)
        lab = kp[:, 2] > 0
        if any(not _inside_any(x, y, polys) for x, y in kp[lab, :2]):
            keep.append(a)
    return keep


def pckh_conflicts(anns: list[dict]) -> list[dict]:
    """Drop annotations that poseval could confuse with another person of the same frame.

    poseval matches a prediction to the GT with the highest PCKh (ties to the lowest index). Scoring the
    GT against itself stays perfect only if no person's labelled joints all lie within half a head
    size (0.6 x head-box diagonal) of another person's same joints; of such a pair the less visible
    person is dropped (annotators would not label someone hidden right behind a double).
    """
    anns = list(anns)
    while True:
        worst = None
        for i, a in enumerate(anns):
            ka = np.asarray(a["keypoints"]).reshape(-1, 3)[EVAL_SLOTS]
            for j, b in enumerate(anns):
                if i == j:
                    continue
                kb = np.asarray(b["keypoints"]).reshape(-1, 3)[EVAL_SLOTS]
                hb = b["bbox_head"]
                thresh = 0.5 * head_size(hb)
                has_b = kb[:, 2] > 0
                both = has_b & (ka[:, 2] > 0)
                d = np.hypot(*(ka[:, :2] - kb[:, :2]).T)
                if has_b.sum() and int((both & (d <= thresh)).sum()) == int(has_b.sum()):
                    worst = i if a["_visible_frac"] < b["_visible_frac"] else j
                    break
            if worst is not None:
                break
        if worst is None:
            return anns
        anns.pop(worst)


def simulate_detections(
    rng: np.random.Generator,
    posed: list[PersonView],
    stats: list[ItemStats],
    image_id: int,
    W: int,
    H: int,
    focal_px: float,
    horizon: float,
    cam_h: float,
    fp_rate: float,
    jitter: float,
    miss: float,
) -> list[dict]:
    """Simulated person detections of one frame, COCO results format (image_id, category_id, bbox, score).

    Every rendered person (crowd members too) is detected with a probability that falls with occlusion
    (1 - visible / covered pixels), truncation (share of body joints outside the image) and small size;
    box jitter grows with the same; heavily occluded people sometimes get a second, partial box; false
    positives are person-shaped boxes standing on the ground plane. Boxes are [x, y, w, h] pixels.
    """
    dets = []
    for v, st in zip(posed, stats):
        if st.amodal_px == 0 or st.amodal_box is None:
            continue
        occ = 1.0 - st.visible_px / st.amodal_px
        x, y = v.joints[BODY_JOINTS, 0], v.joints[BODY_JOINTS, 1]
        trunc = float(np.mean((x < 0) | (x > W - 1) | (y < 0) | (y > H - 1)))
        small = float(np.clip((45.0 - v.height_px) / 35.0, 0, 1))
        p = (1 - miss) * (1 - 0.9 * occ**1.5) * (1 - 0.75 * trunc**1.5) * (1 - 0.85 * small)
        if rng.random() >= p:
            continue
        box = st.amodal_box.astype(np.float64)
        if st.visible_box is not None:
            box = 0.5 * box + 0.5 * st.visible_box
        w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
        sd = (jitter + 0.12 * occ + 0.1 * trunc + 0.05 * small) * np.array([w, h, w, h])
        box = box + rng.normal(0, 1, 4) * sd
        score = float(np.clip(0.3 + 0.65 * p + rng.normal(0, 0.07), 0.05, 0.99))
        dets.append((box, score))
        if rng.random() < 0.03 + 0.25 * occ:  # a second, partial box
            part = box.copy()
            cut = rng.uniform(0.3, 0.6)
            if rng.random() < 0.5:
                part[3] = part[1] + cut * (part[3] - part[1])
            else:
                part[1] = part[3] - cut * (part[3] - part[1])
            dets.append((part, score * rng.uniform(0.3, 0.7)))
    for _ in range(int(rng.poisson(fp_rate))):
        d = rng.uniform(3.0, 14.0)
        hpx = focal_px * 1.7 / d * rng.uniform(0.4, 1.1)
        wpx = hpx * rng.uniform(0.3, 0.7)
        gx, gy = rng.uniform(0, W), horizon + focal_px * cam_h / d
        box = np.array([gx - wpx / 2, gy - hpx, gx + wpx / 2, gy])
        dets.append((box, float(np.clip(rng.beta(2, 5) * 0.9 + 0.05, 0.05, 0.95))))
    out = []
    for box, score in sorted(dets, key=lambda d: -d[1]):
        x0, y0 = np.clip(box[0], 0, W - 1), np.clip(box[1], 0, H - 1)
        x1, y1 = np.clip(box[2], 0, W - 1), np.clip(box[3], 0, H - 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        out.append(
            {
                "image_id": int(image_id),
                "category_id": 1,
                "bbox": [_r(x0), _r(y0), _r(x1 - x0), _r(y1 - y0)],
                "score": round(score, 4),
            }
        )
    return out


def crowd_polygon(members: list[PersonView], W: int, H: int, margin: float = 4.0) -> np.ndarray | None:
    """Convex hull (N, 2) around far crowd members, clipped to the image, or None if not in view."""
    pts = []
    for v in members:
        for p in v.parts:
            r = max(p.ra, p.rb) + margin
            for c in (p.a, p.b):
                pts += [
                    (c[0] - r, c[1] - r),
                    (c[0] + r, c[1] - r),
                    (c[0] - r, c[1] + r),
                    (c[0] + r, c[1] + r),
                ]
    if not pts:
        return None
    pts = np.asarray(pts, np.float32)
    pts[:, 0] = np.clip(pts[:, 0], 0, W - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, H - 1)
    hull = cv2.convexHull(pts).reshape(-1, 2)
    if len(hull) < 3 or cv2.contourArea(hull) < 9.0:
        return None
    return np.round(hull.astype(np.float64), 1)
