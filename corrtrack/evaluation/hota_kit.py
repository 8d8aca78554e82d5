"""Keypoint HOTA exactly as the official PoseTrack21 evaluation kit computes it (the default of ``--hota``).

The kit (Doering et al., CVPR 2022; ``eval/posetrack21`` of the PoseTrack21 repository, TrackEval's HOTA
adapted to keypoints) shares the joints, the distance, the per-frame per-joint Hungarian matching, the 19
alpha thresholds and the DetA / AssA / LocA formulas with the corrected metric of ``hota.py``. It differs
in five rules, all reproduced here (docs/evaluation.md works an example of each):

1. a frame with no GT person (or, with GT, no predicted person) adds the whole *sequence's* predicted
   (GT) joints as false positives (misses), not the frame's own;
2. the frames scored are those whose GT image is flagged ``is_labeled`` (a frame without the flag counts as
   labeled when it has GT persons), with every person of the frame, jointless ones included; in frames with
   ignore regions, joints strictly inside a region are removed, then persons left without any joint;
3. a joint is present when x > 0 and y > 0;
4. similarity s = max(0, 1 - d / 0.5001);
5. the Total column pools DetA over joints and sequences, weights each sequence's joint-mean AssA (and
   LocA) by its TP count summed over joints, and forms HOTA = sqrt(DetA x AssA) from those, per alpha.

Where the kit crashes, on a labeled frame left without GT persons after the ignore regions (IndexError)
or without GT persons and without ignore regions (TypeError), the frame is evaluated as the kit would
evaluate it with correctly shaped empty arrays: an empty GT frame (rule 1).
Everything is computed in the evaluation-joint order (``keypoints.EVAL_NAMES``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corrtrack.evaluation.hota import ALPHAS, _max_similarity_pairs
from corrtrack.evaluation.polygon import points_in_any
from corrtrack.evaluation.prepare import J, Report, _assign_ids, _Ids, pair_frames
from corrtrack.keypoints import EVAL_TO_POSETRACK
from corrtrack.posetrack.types import Frame, Person, Sequence, head_size

KIT_SLOPE = -1.0 / 0.5001             # the kit's similarity slope (``distance2sim``)
_EPS = np.finfo(float).eps
_E2P = EVAL_TO_POSETRACK
_NAN4 = np.full(4, np.nan)


def is_labeled(frame: Frame) -> bool:
    """The GT frame's ``is_labeled`` flag; a frame without the flag counts as labeled if it has persons."""
    return bool(frame.is_labeled) if frame.is_labeled is not None else bool(frame.persons)


@dataclass
class KitFrame:
    """One scored frame as the kit sees it (after ignore regions).

    gid (G,) / pid (P,): compact per-sequence track indices; gxy (G, 15, 2) / pxy (P, 15, 2): joints in image
    pixels; gvalid / pvalid (., 15): x > 0 and y > 0; head (G,): head sizes (0.6 x head-box diagonal)."""

    gid: np.ndarray
    gxy: np.ndarray
    gvalid: np.ndarray
    head: np.ndarray
    pid: np.ndarray
    pxy: np.ndarray
    pvalid: np.ndarray


def _side(persons: list[Person], regions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 15, 2) joints, (N, 15) valid and the (N,) persons the kit keeps in a frame with these regions."""
    n = len(persons)
    if not n:
        return np.zeros((0, J, 2)), np.zeros((0, J), dtype=bool), np.zeros(0, dtype=bool)
    kp = np.stack([p.keypoints for p in persons])[:, _E2P, :2]
    present = np.stack([p.present for p in persons])[:, _E2P]
    kp = np.where(present[..., None], kp, 0.0)              # a slot without a point is written as (0, 0)
    keep = np.ones(n, dtype=bool)
    if regions:                                              # the kit rebuilds a frame only if it has regions
        inside = points_in_any(kp.reshape(-1, 2), regions).reshape(n, J)
        keep = ~inside.all(1)
        kp = np.where(inside[..., None], 0.0, kp)
        with np.errstate(invalid="ignore"):
            keep &= ~((kp[..., 0] <= 0) & (kp[..., 1] <= 0)).all(1)
    with np.errstate(invalid="ignore"):
        valid = (kp[..., 0] > 0) & (kp[..., 1] > 0)
    return kp, valid, keep


def _head_sizes(persons: list[Person]) -> np.ndarray:
    """(N,) head sizes as the kit computes them (0.6 |(x2, y2) - (x1, y1)|, x2 = x1 + w); NaN without a box."""
    if not persons:
        return np.zeros(0)
    return head_size(np.stack([p.head_box if p.head_box is not None else _NAN4 for p in persons]))


def prepare_kit_sequence(gt: Sequence, pred: Sequence | None) -> tuple[list[KitFrame], int, int]:
    """The kit's scored frames of one GT / prediction pair, with the number of GT and predicted track ids.

    Frames are paired as in the AP / MOT part (``prepare.pair_frames``); track ids as there (a person
    without an id, or repeating one in a frame, gets a track of its own: the kit would refuse the file)."""
    quiet = Report()                       # the AP / MOT preparation reports the same problems once
    gt_src = gt.path or f"GT '{gt.name}'"
    pred_src = (pred.path or f"prediction '{gt.name}'") if pred is not None else "prediction"
    pframes = pair_frames(gt, pred, gt_src, pred_src, quiet)
    kept = [k for k, f in enumerate(gt.frames) if is_labeled(f)]
    g_persons, p_persons = [], []
    for k in kept:
        regions = gt.frames[k].ignore_regions
        gps = gt.frames[k].persons
        pps = pframes[k].persons if pframes[k] is not None else []
        g_persons.append((gps, _side(gps, regions)))
        p_persons.append((pps, _side(pps, regions)))
    gids, pids = _Ids(), _Ids()
    gid = _assign_ids([[p for p, k in zip(ps, s[2]) if k] for ps, s in g_persons], gids, gt_src, "GT", kept,
                      quiet)
    pid = _assign_ids([[p for p, k in zip(ps, s[2]) if k] for ps, s in p_persons], pids, pred_src,
                      "predicted", kept, quiet)
    frames = []
    go = po = 0
    for (gps, (gxy, gval, gkeep)), (_, (pxy, pval, pkeep)) in zip(g_persons, p_persons):
        ng, np_ = int(gkeep.sum()), int(pkeep.sum())
        frames.append(KitFrame(gid[go:go + ng], gxy[gkeep], gval[gkeep],
                               _head_sizes([p for p, k in zip(gps, gkeep) if k]),
                               pid[po:po + np_], pxy[pkeep], pval[pkeep]))
        go += ng
        po += np_
    return frames, len(gids.values), len(pids.values)


def kit_similarity(fr: KitFrame) -> np.ndarray:
    """(15, G, P) similarity max(0, 1 - d / 0.5001), 0 where a joint is invalid on either side. A NaN
    distance (no usable head box) is 0 too; the kit would crash on it."""
    diff = fr.gxy[:, None] - fr.pxy[None]                    # (G, P, 15, 2)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]) / fr.head[:, None, None]
        d = np.where(fr.gvalid[:, None] & fr.pvalid[None], d, np.inf)
        sim = np.maximum(KIT_SLOPE * d + 1, 0)
    sim[np.isnan(sim)] = 0.0
    return sim.transpose(2, 0, 1)


@dataclass
class KitSequenceResult:
    """The kit's per-sequence fields, each (19 alphas, 15 joints): TP / FN / FP counts, AssA, LocA."""

    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray
    assa: np.ndarray
    loca: np.ndarray


def evaluate_kit_sequence(frames: list[KitFrame], n_gt_ids: int, n_pred_ids: int) -> KitSequenceResult:
    """The kit's ``HOTAeypoints.eval_sequence`` on prepared frames (rules 1-4)."""
    A = len(ALPHAS)
    n_gt_j = sum((f.gvalid.sum(0) for f in frames), np.zeros(J, dtype=np.int64))
    n_pr_j = sum((f.pvalid.sum(0) for f in frames), np.zeros(J, dtype=np.int64))
    n_gt_dets = sum(len(f.gid) for f in frames)
    n_pr_dets = sum(len(f.pid) for f in frames)
    tp, fn, fp = np.zeros((A, J)), np.zeros((A, J)), np.zeros((A, J))
    if n_pr_dets == 0 or n_gt_dets == 0:       # the kit's early returns: LocA 1, AssA 0
        if n_pr_dets == 0:
            fn[:] = n_gt_j
        else:
            fp[:] = n_pr_j
        return KitSequenceResult(tp, fn, fp, np.zeros((A, J)), np.ones((A, J)))
    gt_count = np.zeros((J, max(n_gt_ids, 1)))
    pr_count = np.zeros((J, max(n_pred_ids, 1)))
    pj, pg, pp, ps = [], [], [], []
    gt_in_matched = np.zeros(J)
    pr_in_matched = np.zeros(J)
    empty_gt = empty_pr = 0
    for f in frames:
        gj, gi = np.nonzero(f.gvalid.T)
        np.add.at(gt_count, (gj, f.gid[gi]), 1)
        qj, qi = np.nonzero(f.pvalid.T)
        np.add.at(pr_count, (qj, f.pid[qi]), 1)
        if len(f.gid) == 0:                    # rule 1: the whole sequence's predicted joints are FP
            empty_gt += 1
            continue
        if len(f.pid) == 0:                    # ... and its GT joints FN
            empty_pr += 1
            continue
        gt_in_matched += f.gvalid.sum(0)
        pr_in_matched += f.pvalid.sum(0)
        sim = kit_similarity(f)
        j, g, p = _max_similarity_pairs(sim)
        if len(j):
            pj.append(j)
            pg.append(f.gid[g])
            pp.append(f.pid[p])
            ps.append(sim[j, g, p])
    fp += empty_gt * n_pr_j
    fn += empty_pr * n_gt_j
    loc = np.zeros((A, J))
    ass = np.zeros((A, J))
    if pj:
        j, g, p, s = (np.concatenate(x) for x in (pj, pg, pp, ps))
        ng, npr = max(n_gt_ids, 1), max(n_pred_ids, 1)
        uniq, inv = np.unique((j.astype(np.int64) * ng + g) * npr + p, return_inverse=True)
        uj, ug, up = uniq // (ng * npr), (uniq // npr) % ng, uniq % npr
        for a, alpha in enumerate(ALPHAS):
            m = s >= alpha - _EPS
            tp[a] = np.bincount(j[m], minlength=J)
            loc[a] = np.bincount(j[m], weights=s[m], minlength=J)
            mc = np.bincount(inv[m], minlength=len(uniq)).astype(np.float64)     # TPA of each track pair
            score = mc * mc / np.maximum(1.0, gt_count[uj, ug] + pr_count[uj, up] - mc)
            ass[a] = np.bincount(uj, weights=score, minlength=J)
    fn += gt_in_matched[None] - tp
    fp += pr_in_matched[None] - tp
    return KitSequenceResult(tp, fn, fp, ass / np.maximum(1.0, tp),
                             np.maximum(1e-10, loc) / np.maximum(1e-10, tp))


def combine_kit_sequences(results: list[KitSequenceResult]) -> dict[str, np.ndarray]:
    """The kit's ``combine_sequences`` for the 15 joints and its Total column (rule 5).

    Returns per-joint {"hota", "deta", "assa", "loca"} (15,) and their ``*_alpha`` curves (19, 15), percent,
    averaged over the alphas, plus ``total`` = {name: float} and ``total_alpha`` = {name: (19,)}."""
    A = len(ALPHAS)
    tp, fn, fp = (sum((getattr(r, k) for r in results), np.zeros((A, J))) for k in ("tp", "fn", "fp"))
    assa = sum((r.assa * r.tp for r in results), np.zeros((A, J))) / np.maximum(1.0, tp)
    loca = np.maximum(1e-10, sum((r.loca * r.tp for r in results), np.zeros((A, J)))) / np.maximum(1e-10, tp)
    deta = tp / np.maximum(1.0, tp + fn + fp)
    # Total: each sequence's joint means weighted by its TP summed over joints; DetA from pooled counts
    tp_t = sum((r.tp.sum(1) for r in results), np.zeros(A))
    assa_t = sum((r.assa.mean(1) * r.tp.sum(1) for r in results), np.zeros(A)) / np.maximum(1.0, tp_t)
    loca_t = np.maximum(1e-10, sum((r.loca.mean(1) * r.tp.sum(1) for r in results), np.zeros(A))) \
        / np.maximum(1e-10, tp_t)
    den_t = sum(((r.tp + r.fn + r.fp).sum(1) for r in results), np.zeros(A))
    deta_t = tp_t / np.maximum(1.0, den_t)
    hota, hota_t = np.sqrt(deta * assa), np.sqrt(deta_t * assa_t)
    out: dict = {}
    total, total_alpha = {}, {}
    for k, v, vt in (("hota", hota, hota_t), ("deta", deta, deta_t), ("assa", assa, assa_t),
                     ("loca", loca, loca_t)):
        out[k] = v.mean(0) * 100
        out[k + "_alpha"] = v * 100
        total[k] = float(vt.mean() * 100)
        total_alpha[k] = vt * 100
    out["total"] = total
    out["total_alpha"] = total_alpha
    return out


def evaluate_hota_kit(gt: dict[str, Sequence], pred: dict[str, Sequence]) -> dict:
    """Keypoint HOTA of the PoseTrack21 kit over all GT sequences (paired with predictions by name; a GT
    sequence without predictions counts as one with no predicted person). See ``combine_kit_sequences``."""
    results = []
    for name, g in gt.items():
        frames, ng, npr = prepare_kit_sequence(g, pred.get(name))
        results.append(evaluate_kit_sequence(frames, ng, npr))
    return combine_kit_sequences(results)
