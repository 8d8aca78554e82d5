"""Random PoseTrack GT / prediction sets for tests, side-by-side checks against poseval, and benchmarks.

A small "world" of people walking through a video is simulated; GT annotates its labeled frames, a noisy
tracker predicts every frame. The sets contain what makes PoseTrack evaluation subtle: unlabeled frames,
unannotated joints, GT persons without joints, ignore regions (some with integer vertices, so that joints
fall exactly on their edges), missed persons and joints, jitter and outliers, duplicate and false-positive
detections, identity swaps and switches, frames without predictions, tied scores, missing scores, and
both file formats in any mix. Every set is valid input for the official poseval (names follow
``NNNNNN_mpii_test``, track ids < 10000, unique per frame, at least two labeled frames per sequence).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from corrtrack.keypoints import NUM_JOINTS
from corrtrack.posetrack.io import save
from corrtrack.posetrack.types import Frame, Person, Sequence

# Body template in PoseTrack 2018 slot order, (x, y) in "head units"; slots 3/4 (ears) unused.
_TEMPLATE = np.array([
    (0.0, -2.6), (0.0, -2.2), (0.0, -3.3), (0.0, 0.0), (0.0, 0.0), (0.8, -2.0), (-0.8, -2.0), (1.0, -1.0),
    (-1.0, -1.0), (1.1, 0.0), (-1.1, 0.0), (0.5, 0.0), (-0.5, 0.0), (0.5, 1.5), (-0.5, 1.5), (0.5, 3.0),
    (-0.5, 3.0)])
_USED = np.array([s not in (3, 4) for s in range(NUM_JOINTS)])
W, H = 1280, 720


@dataclass
class RandomSetConfig:
    """Knobs of the generator (probabilities are per person, joint or frame)."""

    n_sequences: int = 40
    n_frames: int = 60
    fmt: str = "mixed"                 # "2018", "2017" or "mixed" (each file picks one)
    tracks: tuple[int, int] = (2, 6)   # people per video
    p_gt_joint_missing: float = 0.05
    p_gt_person_empty: float = 0.02    # GT person without any annotated joint
    p_ignore_frame: float = 0.15
    p_integer_seq: float = 0.3         # sequences with integer GT coordinates and region vertices
    p_miss_person: float = 0.1
    p_miss_joint: float = 0.08
    jitter: float = 0.12               # Gaussian noise, head units
    p_outlier: float = 0.02
    p_duplicate: float = 0.05          # second detection of a person (some exact copies)
    fp_rate: float = 0.3               # false-positive persons per frame (Poisson)
    p_empty_pred_frame: float = 0.05
    p_empty_pred_person: float = 0.01  # predicted person with no joints
    swaps: tuple[int, int] = (0, 2)    # identity swaps per video
    switches: tuple[int, int] = (0, 2)  # track given a new id per video
    p_tied_scores_seq: float = 0.3     # scores rounded to 0.01 (ties)
    p_no_scores_seq: float = 0.05      # predictions without joint scores
    seed: int = 0


def _labeled_frames(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.integers(3)
    lab = np.zeros(n, dtype=bool)
    if kind == 0:
        lab[:] = True
    elif kind == 1:                                  # PoseTrack 2018 style: every 4th frame + a dense chunk
        lab[rng.integers(4)::4] = True
        a = rng.integers(0, max(1, n - n // 3))
        lab[a:a + n // 3] = True
    else:                                            # PoseTrack 2017 style: a contiguous chunk
        a = rng.integers(0, max(1, n // 3))
        lab[a:a + max(2, n // 2)] = True
    if lab.sum() < 2:
        lab[:2] = True
    return lab


def _world(rng: np.random.Generator, cfg: RandomSetConfig, n: int
           ) -> list[list[tuple[int, np.ndarray, float]]]:
    """Per frame: (track index, (17, 2) keypoints in pixels, unit) of every person in view."""
    n_tracks = int(rng.integers(cfg.tracks[0], cfg.tracks[1] + 1))
    clusters = rng.uniform([150, 150], [W - 150, H - 150], size=(max(1, n_tracks // 2), 2))
    frames: list[list] = [[] for _ in range(n)]
    for t in range(n_tracks):
        if t == 0 or rng.random() < 0.6:
            start, end = 0, n - 1
        else:
            start = int(rng.integers(0, n - 1))
            end = int(rng.integers(start + 1, n))
        unit = rng.uniform(15, 45)
        pos = clusters[rng.integers(len(clusters))] + rng.normal(0, 60, 2)
        vel = rng.normal(0, 3, 2)
        pose = _TEMPLATE + rng.normal(0, 0.15, _TEMPLATE.shape)
        for f in range(start, end + 1):
            pose = pose + rng.normal(0, 0.05, pose.shape)
            kp = pos + pose * unit
            frames[f].append((t, kp, unit))
            vel = 0.9 * vel + rng.normal(0, 1, 2)
            pos = np.clip(pos + vel, 50, [W - 50, H - 50])
    return frames


def _polygon(rng: np.random.Generator, center: np.ndarray, integer: bool) -> np.ndarray:
    k = int(rng.integers(3, 7))
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = rng.uniform(30, 120, k)
    poly = center + np.stack([np.cos(ang), np.sin(ang)], 1) * rad[:, None]
    return np.round(poly) if integer else poly


def make_random_sequence(rng: np.random.Generator, cfg: RandomSetConfig, vid: int
                         ) -> tuple[Sequence, Sequence]:
    """One (GT, prediction) pair named like a PoseTrack validation video."""
    n = cfg.n_frames
    name = f"{vid:06d}_mpii_test"
    world = _world(rng, cfg, n)
    labeled = _labeled_frames(rng, n)
    integer = rng.random() < cfg.p_integer_seq
    tied = rng.random() < cfg.p_tied_scores_seq
    no_scores = rng.random() < cfg.p_no_scores_seq
    n_tracks = 1 + max((t for fr in world for t, _, _ in fr), default=0)
    gt_ids = rng.choice(np.arange(1, 10000), size=n_tracks, replace=False)
    ids_pool = iter(rng.permutation(np.arange(1, 10000)))
    pred_id = {t: int(next(ids_pool)) for t in range(n_tracks)}
    events = _id_events(rng, cfg, n, n_tracks)

    gt_frames, pr_frames = [], []
    for f in range(n):
        fname = f"images/val/{name}/{f:06d}.jpg"
        iid = 10000000000 + vid * 10000 + f
        for e in [e for e in events if e[0] == f]:
            if e[1] == "swap":
                a, b = (int(x) for x in e[2])
                pred_id[a], pred_id[b] = pred_id[b], pred_id[a]
            else:
                pred_id[int(e[2][0])] = int(next(ids_pool))
        persons, regions = _gt_frame(rng, cfg, world[f], gt_ids, integer) if labeled[f] else ([], [])
        gt_frames.append(Frame(file_name=fname, image_id=iid, persons=persons, is_labeled=bool(labeled[f]),
                               ignore_regions=regions))
        preds = []
        if rng.random() >= cfg.p_empty_pred_frame:
            preds = _predicted_frame(rng, cfg, world[f], pred_id, ids_pool, tied, no_scores)
        pr_frames.append(Frame(file_name=fname, image_id=iid, persons=preds, is_labeled=bool(labeled[f])))
    gt = Sequence(name=name, frames=gt_frames, vid_id=vid)
    pr = Sequence(name=name, frames=pr_frames, vid_id=vid)
    return gt, pr


def _id_events(rng: np.random.Generator, cfg: RandomSetConfig, n: int, n_tracks: int) -> list[tuple]:
    """(frame, "swap" | "switch", track indices) of the video's identity errors, by frame."""
    events = []
    for _ in range(int(rng.integers(cfg.swaps[0], cfg.swaps[1] + 1))):
        events.append((int(rng.integers(1, n)), "swap", rng.choice(n_tracks, 2, replace=n_tracks < 2)))
    for _ in range(int(rng.integers(cfg.switches[0], cfg.switches[1] + 1))):
        events.append((int(rng.integers(1, n)), "switch", rng.choice(n_tracks, 1)))
    events.sort(key=lambda e: e[0])
    return events


def _gt_frame(rng: np.random.Generator, cfg: RandomSetConfig, people: list, gt_ids: np.ndarray, integer: bool
              ) -> tuple[list[Person], list[np.ndarray]]:
    """GT persons and ignore regions of a labelled frame showing ``people`` ((track, (17, 2) pixels, unit))."""
    persons, regions = [], []
    for t, kp, unit in people:
        xy = np.round(kp) if integer else kp
        present = _USED & (rng.random(NUM_JOINTS) >= cfg.p_gt_joint_missing)
        if rng.random() < cfg.p_gt_person_empty:
            present[:] = False
        k3 = np.zeros((NUM_JOINTS, 3))
        k3[present, :2] = xy[present]
        k3[present, 2] = 1
        c = (kp[0] + kp[2]) / 2
        s = 1.2 * unit
        head = np.array([c[0] - s / 2, c[1] - s / 2, s, s])
        lo, hi = kp[_USED].min(0), kp[_USED].max(0)
        persons.append(Person(k3, track_id=int(gt_ids[t]), head_box=head, present=present,
                              bbox=np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]),
                              has_points=bool(present.any()) or rng.random() < 0.5))
    if rng.random() < cfg.p_ignore_frame:
        for _ in range(int(rng.integers(1, 3))):
            if people and rng.random() < 0.7:
                _, kp, _ = people[rng.integers(len(people))]
                center = kp[rng.integers(5, NUM_JOINTS)]
            else:
                center = rng.uniform([100, 100], [W - 100, H - 100])
            regions.append(_polygon(rng, center, integer))
    return persons, regions


def _predicted_frame(rng: np.random.Generator, cfg: RandomSetConfig, people: list, pred_id: dict, ids_pool,
                     tied: bool, no_scores: bool) -> list[Person]:
    """The noisy tracker's persons in a frame showing ``people``: misses, duplicates, false positives and an
    occasional person without joints, in random order; new ids are drawn from ``ids_pool``."""
    preds = []
    for t, kp, unit in people:
        if rng.random() < cfg.p_miss_person:
            continue
        preds.append(_detect(rng, cfg, kp, unit, pred_id[t], tied, no_scores))
        if rng.random() < cfg.p_duplicate:
            dup = _detect(rng, cfg, kp, unit, int(next(ids_pool)), tied, no_scores)
            if rng.random() < 0.5:                       # exact copy: equal distances, LSA ties
                dup.keypoints = preds[-1].keypoints.copy()
                dup.present = preds[-1].present.copy()
            preds.append(dup)
    for _ in range(int(rng.poisson(cfg.fp_rate))):
        unit = rng.uniform(15, 45)
        pose = _TEMPLATE + rng.normal(0, 0.3, _TEMPLATE.shape)
        kp = rng.uniform([50, 50], [W - 50, H - 50]) + pose * unit
        preds.append(_detect(rng, cfg, kp, unit, int(next(ids_pool)), tied, no_scores))
    if rng.random() < cfg.p_empty_pred_person:
        preds.append(Person(np.zeros((NUM_JOINTS, 3)), track_id=int(next(ids_pool)),
                            scores=None if no_scores else np.zeros(NUM_JOINTS)))
    order = rng.permutation(len(preds))
    return [preds[i] for i in order]


def _detect(rng, cfg: RandomSetConfig, kp: np.ndarray, unit: float, tid: int, tied: bool,
            no_scores: bool) -> Person:
    xy = kp + rng.normal(0, cfg.jitter * unit, kp.shape)
    out = rng.random(NUM_JOINTS) < cfg.p_outlier
    xy[out] += rng.normal(0, 3 * unit, (int(out.sum()), 2))
    present = _USED & (rng.random(NUM_JOINTS) >= cfg.p_miss_joint)
    k3 = np.zeros((NUM_JOINTS, 3))
    k3[present, :2] = xy[present]
    k3[present, 2] = 1
    scores = None
    if not no_scores:
        scores = rng.uniform(0.05, 1.0, NUM_JOINTS)
        if tied:
            scores = np.round(scores, 2)
        scores[~present] = 0.0
    return Person(k3, track_id=tid, scores=scores, present=present)


def make_random_set(cfg: RandomSetConfig | None = None, **overrides
                    ) -> tuple[dict[str, Sequence], dict[str, Sequence]]:
    """({name: GT}, {name: prediction}) for ``cfg`` (keyword overrides allowed, e.g. ``seed=3``)."""
    cfg = RandomSetConfig(**{**(cfg.__dict__ if cfg else {}), **overrides})
    rng = np.random.default_rng(cfg.seed)
    gt, pr = {}, {}
    vids = rng.choice(np.arange(1, 30000), size=cfg.n_sequences, replace=False)
    for vid in vids:
        g, p = make_random_sequence(rng, cfg, int(vid))
        gt[g.name], pr[p.name] = g, p
    return gt, pr


def write_random_set(out_dir: str, cfg: RandomSetConfig | None = None, **overrides) -> tuple[str, str]:
    """Write a random set as ``out_dir/gt/*.json`` and ``out_dir/pred/*.json``; returns the two folders.

    Each file's format follows ``cfg.fmt`` ("mixed": GT and prediction pick 2017 or 2018 independently).
    """
    cfg = RandomSetConfig(**{**(cfg.__dict__ if cfg else {}), **overrides})
    gt, pr = make_random_set(cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    gt_dir, pred_dir = os.path.join(out_dir, "gt"), os.path.join(out_dir, "pred")
    os.makedirs(gt_dir, exist_ok=True)
    os.makedirs(pred_dir, exist_ok=True)
    for name in gt:
        for seq, folder in ((gt[name], gt_dir), (pr[name], pred_dir)):
            fmt = cfg.fmt if cfg.fmt != "mixed" else ("2018" if rng.random() < 0.5 else "2017")
            save(seq, os.path.join(folder, name + ".json"), fmt)
    return gt_dir, pred_dir
