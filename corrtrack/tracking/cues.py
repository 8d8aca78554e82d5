"""Association cues (paper §5.2 and Table 2's baselines): how similar a track (its last pose) is to each
candidate pose of the current frame. Every cue reads the same precomputed candidates
(``corrtrack.tracking.precompute.VideoCache``), so a difference between cues is the cue's alone.

A cue has one method, ``similarity(cache, last, f) -> (T, P)``: ``last`` lists each track's last
observation as (video frame a, candidate index q in frame a), ``f`` is the current frame; higher is more
similar, and a match needs more than the config's ``min_sim_<cue>``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from corrtrack.keypoints import POSETRACK_SIGMAS
from corrtrack.oks import oks_matrix, pose_area
from corrtrack.tracking.config import TrackingConfig

_FAR = 1e9          # where an undetected candidate joint is put for OKS: it never matches


def masked_oks(ref: np.ndarray, cand: np.ndarray, joint_threshold: float) -> np.ndarray:
    """OKS of (T, 17, 3) reference poses (the tracks) with (P, 17, 3) candidates, counting the reference
    joints scoring >= ``joint_threshold`` (and > 0); a candidate joint scoring below it counts as a miss (similarity
    0). Area = the box of the reference's counted joints. Returns (T, P) in [0, 1]."""
    ref = np.asarray(ref, dtype=np.float64).reshape(-1, 17, 3)
    cand = np.asarray(cand, dtype=np.float64).reshape(-1, 17, 3)
    if len(ref) == 0 or len(cand) == 0:
        return np.zeros((len(ref), len(cand)))
    r = ref.copy()
    r[..., 2] = np.where((ref[..., 2] >= joint_threshold) & (ref[..., 2] > 0), ref[..., 2], 0.0)
    c = cand.copy()
    c[..., :2] = np.where((cand[..., 2:3] >= joint_threshold) & (cand[..., 2:3] > 0), cand[..., :2], _FAR)
    return oks_matrix(r, c, pose_area(r, 0.0), POSETRACK_SIGMAS, min_score=0.0)


def correspondence_similarity(values: np.ndarray, track_scores: np.ndarray, cand_scores: np.ndarray,
                              tau: float, joint_threshold: float, min_joints: int = 1) -> np.ndarray:
    """Eq. 6: S(T^q, B^p) = sum_j C_j^q(j^p) [C > tau] / sum_j [C > tau] over the joints both poses detect
    (score >= ``joint_threshold`` and > 0); 0 when fewer than ``min_joints`` (at least one) joints pass.

    values: (T, P, 17) map values of each track's maps at each candidate's joints; track_scores (T, 17);
    cand_scores (P, 17). Returns (T, P)."""
    v = np.asarray(values, dtype=np.float64)
    ts, cs = np.asarray(track_scores), np.asarray(cand_scores)
    ok = (v > tau) & ((ts >= joint_threshold) & (ts > 0))[:, None, :] & ((cs >= joint_threshold) & (cs > 0))[None]
    n = ok.sum(-1)
    return np.where(n >= max(int(min_joints), 1), (v * ok).sum(-1) / np.maximum(n, 1), 0.0)


def _group(last: Sequence[tuple[int, int]]) -> dict[int, tuple[list[int], list[int]]]:
    """{frame a: (row indices into ``last``, candidate indices q)}."""
    out: dict[int, tuple[list[int], list[int]]] = {}
    for row, (a, q) in enumerate(last):
        rows, qs = out.setdefault(a, ([], []))
        rows.append(row)
        qs.append(q)
    return out


class Cue:
    """Base class: a named similarity."""

    name = ""

    def __init__(self, config: TrackingConfig):
        self.config = config

    def similarity(self, cache, last: Sequence[tuple[int, int]], f: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class OksCue(Cue):
    """OKS between the track's last pose and each candidate (no motion model)."""

    name = "oks"

    def similarity(self, cache, last, f):
        ref = np.asarray([cache.candidates[a].poses[q] for a, q in last]).reshape(-1, 17, 3)
        return masked_oks(ref, cache.candidates[f].poses, self.config.match_joint_threshold)


class FlowCue(Cue):
    """OKS between the track's last pose moved by dense optical flow (OpenCV DIS) and each candidate."""

    name = "flow"

    def similarity(self, cache, last, f):
        cache.require("flow")
        ref = np.asarray([cache.pair(a, f).flow[q] for a, q in last]).reshape(-1, 17, 3)
        return masked_oks(ref, cache.candidates[f].poses, self.config.match_joint_threshold)


class ReidCue(Cue):
    """Cosine similarity of the re-ID embeddings of the track's last box and each candidate's box."""

    name = "reid"

    def similarity(self, cache, last, f):
        cache.require("reid")
        cur = cache.embeddings[f]
        if len(last) == 0 or len(cur) == 0:
            return np.zeros((len(last), len(cur)))
        ref = np.stack([cache.embeddings[a][q] for a, q in last])
        return (ref.astype(np.float64) @ cur.astype(np.float64).T).clip(-1.0, 1.0)


class CorrCue(Cue):
    """Eq. 6 on the correspondence maps of the track's last pose (refined maps, or the peak-normalised
    Siamese maps without a refinement net)."""

    name = "corr"

    def similarity(self, cache, last, f):
        cache.require("corr")
        cand = cache.candidates[f]
        out = np.zeros((len(last), len(cand)))
        if len(cand) == 0:
            return out
        for a, (rows, qs) in _group(last).items():
            vals = cache.pair(a, f).corr[qs]                                    # (T_a, P, 17)
            tscores = cache.candidates[a].poses[qs, :, 2]
            out[rows] = correspondence_similarity(vals, tscores, cand.poses[:, :, 2], self.config.tau_corr,
                                                  self.config.match_joint_threshold, self.config.corr_min_joints)
        return out


class ReleaseCorrCue(Cue):
    """The tracker score of the authors' release (docs/tracking.md): per track, among the candidates
    whose box holds its confident propagated joints, the best by OKS(propagated pose, candidate) + mean
    correspondence value; only that candidate gets a non-zero similarity, and only when the OKS exceeds
    ``release_min_oks`` and the summed correspondence exceeds ``tau_corr * min_candidate_joints``.
    ``duplicates`` then says which unmatched candidates are near-copies of a matched track's pose."""

    name = "corr"

    def __init__(self, config: TrackingConfig):
        super().__init__(config)
        self._last = None

    def similarity(self, cache, last, f):
        cache.require("corr")
        cfg = self.config
        tau, jt, kmin = cfg.tau_corr, cfg.match_joint_threshold, max(cfg.min_candidate_joints, 1)
        cand = cache.candidates[f]
        t, p = len(last), len(cand)
        aff = np.zeros((t, p))
        votes = np.zeros((t, p), dtype=np.int64)
        pose_s = np.zeros((t, p))
        corr_s = np.zeros((t, p))
        if t == 0 or p == 0:
            self._last = (aff, votes, pose_s, corr_s)
            return aff
        cs = cand.poses[:, :, 2]
        cand_ok = (cs >= jt).sum(1) >= kmin
        boxes = _pose_boxes(cand.poses, jt, cache.image_hw.get(f))
        for row, (a, q) in enumerate(last):
            pd = cache.pair(a, f)
            prop = pd.propagated[q]                                           # (17, 3) in frame f
            tjoint = cache.candidates[a].poses[q, :, 2] >= jt
            valid = tjoint & (prop[:, 2] >= tau)
            vals = pd.corr[q]                                                 # (P, 17)
            score = np.zeros(p)
            for k in np.flatnonzero(cand_ok):
                x0, y0, x1, y1 = boxes[k]
                bbx = 0.0
                if valid.sum() >= kmin:
                    inside = valid & (prop[:, 0] >= x0) & (prop[:, 0] <= x1) & (prop[:, 1] >= y0) & (prop[:, 1] <= y1)
                    bbx = float(prop[inside, 2].mean()) if inside.any() else 0.0
                both = valid & (cs[k] >= jt)
                oks = _release_oks(cand.poses[k], prop, both, boxes[k]) if both.any() else 0.0
                cj = (cs[k] >= jt) & tjoint & (vals[k] > tau)
                csum, cnt = float(vals[k][cj].sum()), int(cj.sum())
                votes[row, k] = int(bbx > 0) + int(csum > 0) + int(oks > cfg.release_min_oks)
                corr_s[row, k] = csum
                if bbx > tau:                   # the candidates holding the track's propagated joints
                    pose_s[row, k] = oks
                    score[k] = oks + csum / max(cnt, 1)
            best = int(np.argmax(score))        # the first of equal maxima, as the release's strict '>'
            if score[best] > 0 and pose_s[row, best] > cfg.release_min_oks and corr_s[row, best] > tau * kmin:
                aff[row, best] = score[best]
        self._last = (aff, votes, pose_s, corr_s)
        return aff

    def duplicates(self, matched_tracks: np.ndarray, matched_cands: np.ndarray) -> np.ndarray:
        """(P,) True for unmatched candidates that look like a second pose of a track (the release's
        duplicate suppression with ``duplicate_ratio``); they are dropped instead of starting a track."""
        aff, votes, pose_s, corr_s = self._last
        dup = np.zeros(aff.shape[1], dtype=bool)
        ratio = self.config.duplicate_ratio
        if ratio is None or aff.size == 0:
            return dup
        taken = np.zeros(aff.shape[1], dtype=bool)
        taken[np.asarray(matched_cands, dtype=np.int64)] = True
        for row in np.flatnonzero((votes > 0).sum(1) > 1):
            if not aff[row].any():
                continue
            best = int(np.argmax(aff[row]))
            for k in np.flatnonzero(votes[row] > 0):
                if taken[k]:
                    continue
                r = 0.0
                if pose_s[row, best] > 0:
                    r += pose_s[row, k] / pose_s[row, best]
                if corr_s[row, best] > 0:
                    r += corr_s[row, k] / corr_s[row, best]
                if r > ratio:
                    dup[k] = True
        return dup


def _pose_boxes(poses: np.ndarray, jt: float, image_hw: tuple[int, int] | None, margin: float = 10.0
                ) -> np.ndarray:
    """(P, 4) [x0, y0, x1, y1] around each pose's joints scoring >= jt, + margin, clipped to the image."""
    out = np.zeros((len(poses), 4))
    for i, p in enumerate(poses):
        v = p[p[:, 2] >= jt, :2]
        if len(v) == 0:
            continue
        lo, hi = v.min(0) - margin, v.max(0) + margin
        lo = np.maximum(lo, 0.0)
        if image_hw is not None:
            hi = np.minimum(hi, [image_hw[1] - 1.0, image_hw[0] - 1.0])
        out[i] = [lo[0], lo[1], hi[0], hi[1]]
    return out


def _release_oks(cand: np.ndarray, prop: np.ndarray, valid: np.ndarray, box: np.ndarray) -> float:
    """OKS of the propagated joints against the candidate over ``valid`` joints; area = the candidate's
    box area (the release's ``pose_match_score``)."""
    area = max((box[2] - box[0]) * (box[3] - box[1]), np.spacing(1))
    var = (2.0 * POSETRACK_SIGMAS[valid]) ** 2
    d2 = ((cand[valid, :2] - prop[valid, :2]) ** 2).sum(-1)
    return float(np.exp(-d2 / var / area / 2.0).mean())


def make_cue(cue: str, config: TrackingConfig) -> Cue:
    """The cue object for a cue name ("oks" | "flow" | "reid" | "corr"; ``corr`` follows
    ``config.corr_variant``)."""
    if cue == "oks":
        return OksCue(config)
    if cue == "flow":
        return FlowCue(config)
    if cue == "reid":
        return ReidCue(config)
    if cue == "corr":
        return ReleaseCorrCue(config) if config.corr_variant == "release" else CorrCue(config)
    raise ValueError(f"unknown cue {cue!r}")
