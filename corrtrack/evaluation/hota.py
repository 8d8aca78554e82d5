"""Keypoint HOTA as defined by PoseTrack21 (Doering et al., CVPR 2022), on top of TrackEval's HOTA: the
corrected metric of ``--strict`` (the official kit's numbers are ``hota_kit.py``).

Per joint j, with d = distance / head size (the PCKh distance of the AP and MOT parts):
- similarity s = max(0, 1 - d / 0.5), 0 where the joint is absent on either side;
- per frame, a Hungarian assignment maximising the summed similarity between GT and predicted persons;
- for each alpha in 0.05, 0.10, ..., 0.95 (19 values): pairs with s >= alpha are true positives,
  TP / FN / FP count joints; LocA = mean s over TPs; for each (GT track, predicted track) pair with
  TPA matches, A = TPA / (|GT track| + |pred track| - TPA) (track sizes count frames where the track
  has joint j); AssA = sum over TPs of A / TP; DetA = TP / (TP + FN + FP); HOTA = sqrt(DetA * AssA);
- each score is averaged over the 19 alphas; the totals average the 15 joints.
Sequences combine by summing counts (track ids are per sequence), which equals TrackEval's TP-weighted
combination. The frames are those of the AP part (frames with GT persons, after ignore regions), all of
them: no MOT quirk applies here.
"""
from __future__ import annotations

import numpy as np

from corrtrack.assignment import linear_sum_assignment
from corrtrack.evaluation.prepare import DIST_THRESH, J, PreparedSequence

ALPHAS = np.arange(0.05, 0.99, 0.05)           # TrackEval's 19 thresholds
_EPS = np.finfo(float).eps


def _max_similarity_pairs(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(joint, row, col) of a per-joint maximum-similarity assignment; only pairs with s > 0."""
    pos = sim > 0
    hard = ((pos.sum(2) > 1).any(1)) | ((pos.sum(1) > 1).any(1))
    jj, gg, pp = np.nonzero(pos & ~hard[:, None, None])
    if not hard.any():
        return jj, gg, pp
    out = [(jj, gg, pp)]
    for j in np.nonzero(hard)[0]:
        r, c = linear_sum_assignment(sim[j], maximize=True)
        keep = sim[j][r, c] > 0
        out.append((np.full(keep.sum(), j), r[keep], c[keep]))
    return tuple(np.concatenate(x) for x in zip(*out))


def evaluate_hota(seqs: list[PreparedSequence]) -> dict[str, np.ndarray]:
    """Per-joint HOTA, DetA, AssA, LocA (percent, averaged over alphas) and the alpha curves."""
    n_gt = np.zeros(J, dtype=np.int64)
    n_pr = np.zeros(J, dtype=np.int64)
    pj, pg, pp, ps = [], [], [], []       # matched pairs: joint, global GT id, global pred id, similarity
    gt_count_parts, pr_count_parts = [], []    # (joint, global id) of every present joint
    g_off = p_off = 0
    for seq in seqs:
        for fr in seq.frames:
            G, P = len(fr.gid), len(fr.pid)
            gj, gi = np.nonzero(fr.gmask.T)
            gt_count_parts.append(np.stack([gj, fr.gid[gi] + g_off]))
            if P:
                qj, qi = np.nonzero(fr.pmask.T)
                pr_count_parts.append(np.stack([qj, fr.pid[qi] + p_off]))
            n_gt += fr.gmask.sum(0)
            n_pr += fr.pmask.sum(0)
            if G == 0 or P == 0:
                continue
            d = fr.dist.transpose(2, 1, 0)                                       # (15, G, P)
            with np.errstate(invalid="ignore"):
                sim = np.where(d <= DIST_THRESH, 1.0 - d / DIST_THRESH, 0.0)
            j, g, p = _max_similarity_pairs(sim)
            if len(j):
                pj.append(j)
                pg.append(fr.gid[g] + g_off)
                pp.append(fr.pid[p] + p_off)
                ps.append(sim[j, g, p])
        g_off += len(seq.gt_ids)
        p_off += len(seq.pred_ids)

    A = len(ALPHAS)
    gt_count = np.zeros((J, max(g_off, 1)))
    pr_count = np.zeros((J, max(p_off, 1)))
    if gt_count_parts:
        c = np.concatenate(gt_count_parts, axis=1)
        np.add.at(gt_count, (c[0], c[1]), 1)
    if pr_count_parts:
        c = np.concatenate(pr_count_parts, axis=1)
        np.add.at(pr_count, (c[0], c[1]), 1)
    tp = np.zeros((A, J))
    loc = np.zeros((A, J))
    ass = np.zeros((A, J))
    if pj:
        j, g, p, s = (np.concatenate(x) for x in (pj, pg, pp, ps))
        pair_key = (j.astype(np.int64) * max(g_off, 1) + g) * max(p_off, 1) + p
        uniq, inv = np.unique(pair_key, return_inverse=True)
        uj = uniq // (max(g_off, 1) * max(p_off, 1))
        ug = (uniq // max(p_off, 1)) % max(g_off, 1)
        up = uniq % max(p_off, 1)
        for a, alpha in enumerate(ALPHAS):
            m = s >= alpha - _EPS
            tp[a] = np.bincount(j[m], minlength=J)
            loc[a] = np.bincount(j[m], weights=s[m], minlength=J)
            mc = np.bincount(inv[m], minlength=len(uniq)).astype(np.float64)       # TPA per track pair
            score = mc * mc / np.maximum(1.0, gt_count[uj, ug] + pr_count[uj, up] - mc)
            ass[a] = np.bincount(uj, weights=score, minlength=J)
    fn = n_gt[None, :] - tp
    fp = n_pr[None, :] - tp
    det_a = tp / np.maximum(1.0, tp + fn + fp)
    ass_a = ass / np.maximum(1.0, tp)
    loc_a = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    hota = np.sqrt(det_a * ass_a)
    empty = (n_gt + n_pr) == 0                 # no GT and no prediction of the joint: undefined, not 0
    for arr in (det_a, ass_a, loc_a, hota):
        arr[:, empty] = np.nan
    return {"hota": hota.mean(0) * 100, "deta": det_a.mean(0) * 100, "assa": ass_a.mean(0) * 100,
            "loca": loc_a.mean(0) * 100, "hota_alpha": hota * 100, "deta_alpha": det_a * 100,
            "assa_alpha": ass_a * 100, "loca_alpha": loc_a * 100}
