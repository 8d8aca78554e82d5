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

from corrtrack.assignment import linear_sum_assignment_many
from corrtrack.evaluation.hota import ALPHAS
from corrtrack.evaluation.polygon import points_in_regions
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
class KitSide:
    """The persons the kit keeps on one side (GT or predictions) of a sequence, stacked in frame order.

    frame (N,): position of the person's frame among the scored frames; id (N,): compact per-sequence track
    index; xy (N, 15, 2): joints in image pixels (0 where absent or inside an ignore region); valid (N, 15):
    x > 0 and y > 0."""

    frame: np.ndarray
    id: np.ndarray
    xy: np.ndarray
    valid: np.ndarray


@dataclass
class KitSequence:
    """One sequence as the kit scores it: ``n_frames`` scored frames, both sides, the (GT persons,) head
    sizes (0.6 x head-box diagonal, NaN without a box) and the numbers of GT and predicted track ids."""

    n_frames: int
    gt: KitSide
    pred: KitSide
    head: np.ndarray
    n_gt_ids: int
    n_pred_ids: int


def _side(frames_persons: list[list[Person]], regions: list[list[np.ndarray]]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Person]]:
    """All persons of one side of the scored frames: (N, 15, 2) joints, (N, 15) valid, (N,) kept by the
    kit, (N,) frame positions and the flat person list."""
    counts = np.array([len(x) for x in frames_persons], dtype=np.int64)
    frame = np.repeat(np.arange(len(counts)), counts)
    flat = [p for persons in frames_persons for p in persons]
    n = len(flat)
    if not n:
        return np.zeros((0, J, 2)), np.zeros((0, J), dtype=bool), np.zeros(0, dtype=bool), frame, flat
    kp = np.stack([p.keypoints for p in flat])[:, _E2P, :2]
    present = np.stack([p.present for p in flat])[:, _E2P]
    kp = np.where(present[..., None], kp, 0.0)              # a slot without a point is written as (0, 0)
    keep = np.ones(n, dtype=bool)
    rows = np.flatnonzero(np.array([bool(r) for r in regions], dtype=bool)[frame])
    if len(rows):                                            # the kit rebuilds a frame only if it has regions
        inside = points_in_regions(kp[rows].reshape(-1, 2), np.repeat(frame[rows], J), regions).reshape(-1, J)
        sub = np.where(inside[..., None], 0.0, kp[rows])
        with np.errstate(invalid="ignore"):
            keep[rows] = ~inside.all(1) & ~((sub[..., 0] <= 0) & (sub[..., 1] <= 0)).all(1)
        kp[rows] = sub
    with np.errstate(invalid="ignore"):
        valid = (kp[..., 0] > 0) & (kp[..., 1] > 0)
    return kp, valid, keep, frame, flat


def _kept_by_frame(flat: list[Person], keep: np.ndarray, frame: np.ndarray, n_frames: int
                   ) -> list[list[Person]]:
    """The kept persons of ``flat`` as one list per frame."""
    out: list[list[Person]] = [[] for _ in range(n_frames)]
    for p, k, f in zip(flat, keep.tolist(), frame.tolist()):
        if k:
            out[f].append(p)
    return out


def prepare_kit_sequence(gt: Sequence, pred: Sequence | None) -> KitSequence:
    """The kit's scored frames of one GT / prediction pair, both sides stacked.

    Frames are paired as in the AP / MOT part (``prepare.pair_frames``); track ids as there (a person
    without an id, or repeating one in a frame, gets a track of its own: the kit would refuse the file)."""
    quiet = Report()                       # the AP / MOT preparation reports the same problems once
    gt_src = gt.path or f"GT '{gt.name}'"
    pred_src = (pred.path or f"prediction '{gt.name}'") if pred is not None else "prediction"
    pframes = pair_frames(gt, pred, gt_src, pred_src, quiet)
    kept = [k for k, f in enumerate(gt.frames) if is_labeled(f)]
    regions = [gt.frames[k].ignore_regions for k in kept]
    sides = []
    ids = []
    for what, src, persons in (
            ("GT", gt_src, [gt.frames[k].persons for k in kept]),
            ("predicted", pred_src, [pframes[k].persons if pframes[k] is not None else [] for k in kept])):
        kp, valid, keep, frame, flat = _side(persons, regions)
        by_frame = _kept_by_frame(flat, keep, frame, len(kept))
        ids.append(_Ids())
        tid = _assign_ids(by_frame, ids[-1], src, what, kept, quiet)
        sides.append(KitSide(frame[keep], tid, kp[keep], valid[keep]))
        if what == "GT":
            boxes = [p.head_box if p.head_box is not None else _NAN4 for ps in by_frame for p in ps]
            head = head_size(np.stack(boxes)) if boxes else np.zeros(0)
    return KitSequence(len(kept), sides[0], sides[1], head, len(ids[0].values), len(ids[1].values))


def kit_similarity(g: KitSide, p: KitSide, head: np.ndarray, gi: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """(pairs, 15) similarity max(0, 1 - d / 0.5001) of the (GT row gi, predicted row pi) pairs, 0 where a
    joint is invalid on either side. A NaN distance (no usable head box) is 0 too; the kit would crash on
    it."""
    diff = g.xy[gi] - p.xy[pi]                                # (pairs, 15, 2)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]) / head[gi][:, None]
        d = np.where(g.valid[gi] & p.valid[pi], d, np.inf)
        sim = np.maximum(KIT_SLOPE * d + 1, 0)
    sim[np.isnan(sim)] = 0.0
    return sim


def _frame_pairs(gcnt: np.ndarray, pcnt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (GT row, predicted row) pair of every frame, frame by frame, GT-major: (pairs,) GT rows,
    predicted rows, frames, and the (frames + 1,) offsets of each frame's pairs."""
    npairs = gcnt * pcnt
    off = np.concatenate(([0], np.cumsum(npairs)))
    fi = np.repeat(np.arange(len(gcnt)), npairs)
    local = np.arange(off[-1]) - off[fi]
    ncol = np.maximum(pcnt, 1)[fi]
    gi = (np.cumsum(gcnt) - gcnt)[fi] + local // ncol
    pi = (np.cumsum(pcnt) - pcnt)[fi] + local % ncol
    return gi, pi, fi, off


def _matched_pairs(sim: np.ndarray, gi: np.ndarray, pi: np.ndarray, fi: np.ndarray, off: np.ndarray,
                   gcnt: np.ndarray, pcnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-frame, per-joint maximum-similarity assignment (``hota._max_similarity_pairs``) of all frames
    at once: (pair, joint) of the chosen pairs with s > 0, in the order the frame-by-frame computation
    yields them (frame; then a joint whose positive pairs share no row or column: all its positive pairs,
    joint-major; then the other joints by the Hungarian assignment, joint by joint)."""
    F = len(gcnt)
    pos_pair, pos_j = np.nonzero(sim > 0)
    # a (frame, joint) is hard when a GT or predicted person has more than one positive pair there
    hard = np.zeros(F * J, dtype=bool)
    for rows in (gi, pi):
        if not len(rows):
            continue
        frame_of_row = np.zeros(int(rows.max()) + 1, dtype=np.int64)
        frame_of_row[rows] = fi
        over = np.flatnonzero(np.bincount(rows[pos_pair] * J + pos_j, minlength=len(frame_of_row) * J) > 1)
        hard[frame_of_row[over // J] * J + over % J] = True
    easy = ~hard[fi[pos_pair] * J + pos_j]
    easy_pair, easy_j = pos_pair[easy], pos_j[easy]
    hard = hard.reshape(F, J)
    hard_pair, hard_j = _hungarian_pairs(sim, hard, off, gcnt, pcnt)
    pair = np.concatenate((easy_pair, hard_pair))
    j = np.concatenate((easy_j, hard_j))
    flag = np.r_[np.zeros(len(easy_pair), dtype=np.int64), np.ones(len(hard_pair), dtype=np.int64)]
    order = np.lexsort((pair, j, flag, fi[pair]))
    return pair[order], j[order]


@dataclass
class KitSequenceResult:
    """The kit's per-sequence fields, each (19 alphas, 15 joints): TP / FN / FP counts, AssA, LocA."""

    tp: np.ndarray
    fn: np.ndarray
    fp: np.ndarray
    assa: np.ndarray
    loca: np.ndarray


def _hungarian_pairs(sim: np.ndarray, hard: np.ndarray, off: np.ndarray, gcnt: np.ndarray, pcnt: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(pair, joint) chosen by the maximum-similarity assignment of each hard (frame, joint) of ``hard``
    (F, 15), pairs with s > 0 only; frames in order, joints ascending, rows ascending."""
    fs, js = np.nonzero(hard)
    rows, cols, cases = [], [], []
    for start, stop in _runs(fs):
        f = fs[start]
        block = sim[off[f]:off[f + 1]].T[js[start:stop]].reshape(stop - start, gcnt[f], pcnt[f])
        for r, c in linear_sum_assignment_many(block, maximize=True):
            rows.append(r)
            cols.append(c)
            cases.append(len(r))
    if not cases:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    f, j = np.repeat(fs, cases), np.repeat(js, cases)
    pair = off[f] + np.concatenate(rows) * pcnt[f] + np.concatenate(cols)
    keep = sim[pair, j] > 0
    return pair[keep], j[keep]


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal values."""
    if not len(values):
        return []
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]).tolist()
    return list(zip(starts, starts[1:] + [len(values)]))


def evaluate_kit_sequence(ks: KitSequence) -> KitSequenceResult:
    """The kit's ``HOTAeypoints.eval_sequence`` on a prepared sequence (rules 1-4)."""
    A = len(ALPHAS)
    g, p = ks.gt, ks.pred
    n_gt_j = g.valid.sum(0)
    n_pr_j = p.valid.sum(0)
    tp, fn, fp = np.zeros((A, J)), np.zeros((A, J)), np.zeros((A, J))
    if len(p.id) == 0 or len(g.id) == 0:       # the kit's early returns: LocA 1, AssA 0
        if len(p.id) == 0:
            fn[:] = n_gt_j
        else:
            fp[:] = n_pr_j
        return KitSequenceResult(tp, fn, fp, np.zeros((A, J)), np.ones((A, J)))
    ng, npr = max(ks.n_gt_ids, 1), max(ks.n_pred_ids, 1)
    gj, gr = np.nonzero(g.valid.T)
    gt_count = np.bincount(gj * ng + g.id[gr], minlength=J * ng).reshape(J, ng).astype(np.float64)
    qj, qr = np.nonzero(p.valid.T)
    pr_count = np.bincount(qj * npr + p.id[qr], minlength=J * npr).reshape(J, npr).astype(np.float64)
    gcnt = np.bincount(g.frame, minlength=ks.n_frames)
    pcnt = np.bincount(p.frame, minlength=ks.n_frames)
    matched = (gcnt > 0) & (pcnt > 0)
    empty_gt = int((gcnt == 0).sum())          # rule 1: the whole sequence's predicted joints are FP
    empty_pr = int(((gcnt > 0) & (pcnt == 0)).sum())      # ... and its GT joints FN
    gt_in_matched = g.valid[matched[g.frame]].sum(0).astype(np.float64)
    pr_in_matched = p.valid[matched[p.frame]].sum(0).astype(np.float64)
    gcnt_m, pcnt_m = np.where(matched, gcnt, 0), np.where(matched, pcnt, 0)
    gi, pi, fi, off = _frame_pairs(gcnt_m, pcnt_m)
    gi += (np.cumsum(gcnt) - np.cumsum(gcnt_m))[fi]         # rows of the frames left out come before
    pi += (np.cumsum(pcnt) - np.cumsum(pcnt_m))[fi]
    sim = kit_similarity(g, p, ks.head, gi, pi)
    pair, j = _matched_pairs(sim, gi, pi, fi, off, gcnt_m, pcnt_m)
    fp += empty_gt * n_pr_j
    fn += empty_pr * n_gt_j
    loc = np.zeros((A, J))
    ass = np.zeros((A, J))
    if len(pair):
        gtr, prr, s = g.id[gi[pair]], p.id[pi[pair]], sim[pair, j]
        uniq, inv = np.unique((j.astype(np.int64) * ng + gtr) * npr + prr, return_inverse=True)
        uj, ug, up = uniq // (ng * npr), (uniq // npr) % ng, uniq % npr
        # all alphas at once: row a of each (A, ...) array is alpha a; bincount keys a * J + joint
        m = s[None] >= (ALPHAS - _EPS)[:, None]                                  # (A, pairs)
        a_idx, k = np.nonzero(m)
        jk = a_idx * J + j[k]
        tp = np.bincount(jk, minlength=A * J).reshape(A, J).astype(np.float64)
        loc = np.bincount(jk, weights=s[k], minlength=A * J).reshape(A, J)
        U = len(uniq)
        mc = np.bincount(a_idx * U + inv[k], minlength=A * U).reshape(A, U).astype(np.float64)   # TPA
        score = mc * mc / np.maximum(1.0, (gt_count[uj, ug] + pr_count[uj, up])[None] - mc)
        ass = np.bincount((np.arange(A)[:, None] * J + uj[None]).ravel(), weights=score.ravel(),
                          minlength=A * J).reshape(A, J)
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
        results.append(evaluate_kit_sequence(prepare_kit_sequence(g, pred.get(name))))
    return combine_kit_sequences(results)
