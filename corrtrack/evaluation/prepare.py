"""Turn paired GT / prediction sequences into per-frame arrays, in poseval's preprocessing order.

Order (poseval's; docs/evaluation.md), per sequence:
1. frames are paired by position (by image file name when the counts differ); GT frames with no person
   are dropped with their prediction frame (``is_labeled`` is not read);
2. persons without points (2017 ``annorect`` without ``annopoints``) are removed; in frames with ignore
   regions every GT or predicted joint strictly inside a region is removed, then every person left
   without joints;
3. distances: (P, G, 15) head-size normalised, ``inf`` where either joint is absent.

Every problem that poseval crashes on is handled here with a warning (``Report``) or a clear
``EvaluationInputError``; see docs/evaluation.md for the list.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from corrtrack.evaluation.polygon import points_in_regions
from corrtrack.keypoints import EVAL_TO_POSETRACK, NUM_EVAL_JOINTS, NUM_JOINTS
from corrtrack.posetrack.io import MISSING_SCORE   # poseval's score for a predicted joint without one
from corrtrack.posetrack.types import Frame, Sequence, head_size


DIST_THRESH = 0.5        # PCKh@0.5
J = NUM_EVAL_JOINTS


class EvaluationInputError(ValueError):
    """Inputs the evaluation cannot pair or use; the message names the files (and frame)."""


class Report:
    """Collects warnings, aggregated per (file, kind) so a bad file gives one line, not thousands."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], list] = {}
        self._order: list[tuple[str, str]] = []

    def add(self, source: str, kind: str, text: str, frame: int | None = None, count: int = 1) -> None:
        key = (source, kind)
        if key not in self._items:
            self._items[key] = [text, 0, []]
            self._order.append(key)
        item = self._items[key]
        item[1] += count
        if frame is not None and frame not in item[2]:
            item[2].append(frame)

    def messages(self) -> list[str]:
        out = []
        for key in self._order:
            text, count, frames = self._items[key]
            msg = f"{key[0]}: {text.format(n=count)}"
            if frames:
                shown = ", ".join(str(f) for f in frames[:5])
                more = f" and {len(frames) - 5} more" if len(frames) > 5 else ""
                msg += f" (frame{'s' if len(frames) > 1 else ''} {shown}{more})"
            out.append(msg)
        return out


@dataclass
class PreparedFrame:
    """One evaluated frame. Arrays are in evaluation-joint order (15 joints, ``keypoints.EVAL_NAMES``).

    gid (G,) / pid (P,): per-sequence compact track indices of the kept GT / predicted persons, in file
    order; gmask (G, 15) / pmask (P, 15): joint present; pscore (P, 15): joint scores (missing -> -9999);
    dist (P, G, 15): distance / head size, inf where a joint is absent on either side.
    """

    index: int
    gid: np.ndarray
    gmask: np.ndarray
    pid: np.ndarray
    pmask: np.ndarray
    pscore: np.ndarray
    dist: np.ndarray
    labels: np.ndarray | None = None     # (P, 15) AP true positives (``ap.sequence_labels``)


@dataclass
class PreparedSequence:
    name: str
    frames: list[PreparedFrame] = field(default_factory=list)
    gt_ids: list = field(default_factory=list)      # compact index -> original track id (None: generated)
    pred_ids: list = field(default_factory=list)


def _frame_key(name: str) -> str:
    parts = name.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def pair_frames(gt: Sequence, pred: Sequence | None, gt_src: str, pred_src: str,
                report: Report) -> list[Frame | None]:
    """Prediction frame for each GT frame (None: no prediction frame)."""
    n = len(gt.frames)
    if pred is None:
        return [None] * n
    if len(pred.frames) == n:
        return list(pred.frames)
    gkeys = [_frame_key(f.file_name) for f in gt.frames]
    index = {k: i for i, k in enumerate(gkeys)}
    why = ""
    if "" in index or len(index) != n:
        why = "the GT frames have no unique image file names"
    out: list[Frame | None] = [None] * n
    extra = []
    if not why:
        for i, f in enumerate(pred.frames):
            k = _frame_key(f.file_name)
            g = index.get(k)
            if g is None:
                extra.append(i)
            elif out[g] is not None:
                why = f"prediction frames name '{k}' twice (frame {i})"
                break
            else:
                out[g] = f
        if not why and len(extra) == len(pred.frames):
            why = f"no prediction frame is a GT frame (e.g. frame 0: '{pred.frames[0].file_name}')"
    if why:
        raise EvaluationInputError(
            f"{pred_src} has {len(pred.frames)} frames but its GT {gt_src} has {n}; frames are paired by "
            f"position, and pairing them by image file name failed: {why}")
    msg = (f"has {len(pred.frames)} frames, its GT has {n}: frames paired by image file name; GT frames "
           "without a prediction frame count as frames without predictions")
    if extra:
        msg += (f"; {len(extra)} prediction frame(s) that are not GT frames are ignored "
                f"(first: frame {extra[0]})")
    report.add(pred_src, "paired-by-name", msg)
    return out


class _Ids:
    """Compact per-sequence track indices; persons without a usable id get a fresh one."""

    def __init__(self) -> None:
        self.map: dict = {}
        self.values: list = []

    def fresh(self, original=None) -> int:
        self.values.append(original)
        return len(self.values) - 1

    def get(self, tid) -> int:
        c = self.map.get(tid)
        if c is None:
            c = self.map[tid] = self.fresh(tid)
        return c


def _assign_ids(frames_persons: list[list], ids: _Ids, src: str, what: str, frame_index: list[int],
                report: Report) -> np.ndarray:
    """Compact track indices of all persons, frame by frame; missing or repeated ids get fresh ones."""
    out = []
    for k, persons in zip(frame_index, frames_persons):
        seen = set()
        for p in persons:
            tid = p.track_id
            if tid is None:
                out.append(ids.fresh())
                report.add(src, f"{what}-no-track-id",
                           f"{{n}} {what} person(s) without 'track_id': each gets its own one-frame track "
                           "(AP is unaffected; MOTA counts them as new tracks)", k)
            elif tid in seen:
                out.append(ids.fresh(tid))
                report.add(src, f"{what}-dup-track-id",
                           f"{{n}} duplicate {what} track id(s) within a frame: the later person gets a new "
                           "track", k)
            else:
                seen.add(tid)
                out.append(ids.get(tid))
    return np.asarray(out, dtype=np.int64)


_E2P = EVAL_TO_POSETRACK
_NAN4 = np.full(4, np.nan)
_NO_SCORES = np.full(NUM_JOINTS, MISSING_SCORE)


class _Side:
    """All kept persons of one side (GT or predictions) of a sequence, stacked; frames are slices."""

    def __init__(self, frames_persons: list[list], scores: bool) -> None:
        flat = [p for persons in frames_persons for p in persons]
        self.counts = np.array([len(x) for x in frames_persons], dtype=np.int64)
        n = len(flat)
        if n:
            self.kp = np.stack([p.keypoints for p in flat])[:, _E2P, :2]
            self.mask = np.stack([p.present for p in flat])[:, _E2P]
        else:
            self.kp, self.mask = np.zeros((0, J, 2)), np.zeros((0, J), dtype=bool)
        if scores:
            rows = [p.scores if p.scores is not None else _NO_SCORES for p in flat]
            self.raw_scores = np.stack(rows)[:, _E2P] if n else np.zeros((0, J))
        else:
            self.head = np.stack([p.head_box if p.head_box is not None else _NAN4 for p in flat]) if n \
                else np.zeros((0, 4))

    def frame_of(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.counts)), self.counts)


def _report_frames(report: Report, src: str, kind: str, text: str, bad: np.ndarray, frame_of: np.ndarray,
                   frame_index: np.ndarray) -> None:
    if bad.any():
        rows = np.nonzero(bad.reshape(len(bad), -1).any(1))[0]
        for f in np.unique(frame_of[rows])[:6]:
            report.add(src, kind, text, int(frame_index[f]), 0)
        report.add(src, kind, text, None, int(bad.sum()))


def sequence_labels(dist: np.ndarray, pp: np.ndarray, gi: np.ndarray, gmask: np.ndarray, n_pred: int
                    ) -> np.ndarray:
    """AP true positives (n_pred, 15) of all frames at once from the (pairs, 15) distances of every
    (prediction pp, GT gi) pair, pairs grouped by prediction with GT ascending (see ``ap.frame_labels``
    for the same rule frame by frame): each prediction keeps its best-PCKh GT (first on ties); each GT
    takes the kept prediction with the highest PCKh (first on ties), if above 0."""
    labels = np.zeros((n_pred, J), dtype=bool)
    match = dist <= DIST_THRESH
    n_gt = gmask.sum(1)[gi]
    cnt = match.sum(1).astype(np.float64)
    pck = np.where(n_gt > 0, cnt / np.maximum(n_gt, 1), cnt)
    starts = np.flatnonzero(np.r_[True, pp[1:] != pp[:-1]])
    sizes = np.diff(np.r_[starts, len(pp)])
    group = np.repeat(np.arange(len(starts)), sizes)
    best_val = np.maximum.reduceat(pck, starts)
    idx = np.arange(len(pp))
    best = np.minimum.reduceat(np.where(pck == best_val[group], idx, len(pp)), starts)   # first best pair
    val = pck[best]
    cand = best[val > 0]
    if len(cand):
        order = np.lexsort((pp[cand], -pck[cand], gi[cand]))       # per GT: highest PCKh, then first
        cand = cand[order]
        first = np.r_[True, gi[cand][1:] != gi[cand][:-1]]
        win = cand[first]
        labels[pp[win]] = match[win]
    return labels


def prepare_sequence(name: str, gt: Sequence, pred: Sequence | None, report: Report) -> PreparedSequence:
    """Preprocess one GT / prediction pair (steps 1-2 above) and compute its distance matrices."""
    gt_src = gt.path or f"GT '{name}'"
    pred_src = (pred.path or f"prediction '{name}'") if pred is not None else f"prediction '{name}'"
    pframes = pair_frames(gt, pred, gt_src, pred_src, report)
    out = PreparedSequence(name=name)
    # step 1: frames whose GT has no person are dropped; step 2a: persons without points are removed
    kept = [k for k, gf in enumerate(gt.frames) if gf.persons]
    if not kept:
        return out
    g_persons = [[p for p in gt.frames[k].persons if p.has_points] for k in kept]
    p_persons = [[p for p in pframes[k].persons if p.has_points] if pframes[k] is not None else []
                 for k in kept]
    gids, pids = _Ids(), _Ids()
    gid = _assign_ids(g_persons, gids, gt_src, "GT", kept, report)
    pid = _assign_ids(p_persons, pids, pred_src, "predicted", kept, report)
    G, P = _Side(g_persons, scores=False), _Side(p_persons, scores=True)
    frame_index = np.asarray(kept)
    g_frame, p_frame = G.frame_of(), P.frame_of()
    psc = _ranking_scores(P, pred, pred_src, p_frame, frame_index, report)
    # step 2b: ignore regions remove joints, then persons left without joints (both sides)
    g_keep, p_keep = _remove_ignored(gt, kept, G, P)
    if not g_keep.all() or not p_keep.all():
        gid, g_frame, G.kp, G.mask, G.head = (a[g_keep] for a in (gid, g_frame, G.kp, G.mask, G.head))
        pid, p_frame, P.kp, P.mask, psc = (a[p_keep] for a in (pid, p_frame, P.kp, P.mask, psc))
        G.counts = np.bincount(g_frame, minlength=len(kept))
        P.counts = np.bincount(p_frame, minlength=len(kept))
    hs = _checked_head_sizes(G, P, gt_src, pred_src, g_frame, p_frame, frame_index, report)
    # step 3: all (prediction, GT) pairs of every frame in one batch
    dist_all, labels, pair_off = _pair_distances(G, P, hs, len(pid))
    go = np.concatenate(([0], np.cumsum(G.counts)))
    po = np.concatenate(([0], np.cumsum(P.counts)))
    for f, k in enumerate(kept):
        ga, gb, pa, pb = go[f], go[f + 1], po[f], po[f + 1]
        dist = dist_all[pair_off[f]:pair_off[f + 1]].reshape(pb - pa, gb - ga, J)
        out.frames.append(PreparedFrame(k, gid[ga:gb], G.mask[ga:gb], pid[pa:pb], P.mask[pa:pb], psc[pa:pb],
                                        dist, labels[pa:pb]))
    out.gt_ids, out.pred_ids = gids.values, pids.values
    return out


def _ranking_scores(P: _Side, pred: Sequence | None, pred_src: str, p_frame: np.ndarray,
                    frame_index: np.ndarray, report: Report) -> np.ndarray:
    """The (persons, 15) predicted joint scores with NaN replaced by the missing score (reported when the
    file holds the NaN itself)."""
    psc = P.raw_scores
    nan = np.isnan(psc)
    if nan.any():
        if pred is not None and pred.format in ("2018", "2021"):          # a NaN in the file, not a missing score
            _report_frames(report, pred_src, "nan-score",
                           "{n} predicted joint score(s) are NaN: ranked like a missing score "
                           f"({MISSING_SCORE:g}); poseval would rank them first", nan & P.mask, p_frame,
                           frame_index)
        psc = np.where(nan, MISSING_SCORE, psc)
    return psc


def _remove_ignored(gt: Sequence, kept: list[int], G: _Side, P: _Side) -> tuple[np.ndarray, np.ndarray]:
    """Clear, in place, the masks of GT and predicted joints inside an ignore region of their frame; returns
    which GT and predicted persons still have a joint (persons of frames without regions are all kept)."""
    regions = [gt.frames[k].ignore_regions for k in kept]
    has_regions = np.array([bool(r) for r in regions], dtype=bool)
    keeps = []
    for side in (G, P):
        keep = np.ones(len(side.mask), dtype=bool)
        frame = side.frame_of()
        rows = np.flatnonzero(has_regions[frame])
        if len(rows):                            # every joint of every frame with regions in one test
            inside = points_in_regions(side.kp[rows].reshape(-1, 2), np.repeat(frame[rows], J), regions)
            side.mask[rows] &= ~inside.reshape(-1, J)
            keep[rows] = side.mask[rows].any(1)
        keeps.append(keep)
    return keeps[0], keeps[1]


def _checked_head_sizes(G: _Side, P: _Side, gt_src: str, pred_src: str, g_frame: np.ndarray,
                        p_frame: np.ndarray, frame_index: np.ndarray, report: Report) -> np.ndarray:
    """The (GT persons,) head sizes; reports the values poseval would silently mis-handle (non-finite
    joints on either side, GT persons with joints but no usable head box)."""
    for what, side, src, fr in (("GT", G, gt_src, g_frame), ("predicted", P, pred_src, p_frame)):
        _report_frames(report, src, f"{what}-nonfinite", f"{{n}} {what} joint(s) have NaN or infinite "
                       "coordinates: they count as present joints that never match (as in poseval)",
                       side.mask & ~np.isfinite(side.kp).all(-1), fr, frame_index)
    hs = head_size(G.head)                         # poseval: 0.6 |(x2, y2) - (x1, y1)|, x2 = x1 + w
    with np.errstate(invalid="ignore"):
        bad_head = ~(np.isfinite(hs) & (hs > 0)) & G.mask.any(1)
    _report_frames(report, gt_src, "gt-head-box", "{n} GT person(s) with joints have no usable head box "
                   "(missing, zero-size or not finite): their joints cannot be matched and count as missed",
                   bad_head, g_frame, frame_index)
    return hs


def _pair_distances(G: _Side, P: _Side, hs: np.ndarray, n_pred: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pairs, 15) head-normalised distances of every (prediction, GT) pair of every frame (frame by frame,
    grouped by prediction, GT ascending; ``inf`` where either joint is absent), the (n_pred, 15) AP labels
    and the (frames + 1,) offsets of each frame's pairs."""
    nG, nP = G.counts, P.counts
    npairs = nP * nG
    pair_off = np.concatenate(([0], np.cumsum(npairs)))
    total = int(pair_off[-1])
    if not total:
        return np.zeros((0, J)), np.zeros((n_pred, J), dtype=bool), pair_off
    fi = np.repeat(np.arange(len(nG)), npairs)
    local = np.arange(total) - pair_off[fi]
    gcount = nG[fi]
    pp = np.concatenate(([0], np.cumsum(nP)))[fi] + local // gcount
    gi = np.concatenate(([0], np.cumsum(nG)))[fi] + local % gcount
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        diff = P.kp[pp] - G.kp[gi]                                       # (pairs, 15, 2)
        d = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]) / hs[gi][:, None]
    dist_all = np.where(P.mask[pp] & G.mask[gi], d, np.inf)
    return dist_all, sequence_labels(dist_all, pp, gi, G.mask, n_pred), pair_off


def prepare(gt: dict[str, Sequence], pred: dict[str, Sequence], report: Report) -> list[PreparedSequence]:
    """Pair sequences by name (GT order) and prepare each pair."""
    if not gt:
        raise EvaluationInputError("no GT sequences to evaluate")
    missing = [n for n in gt if n not in pred]
    for n in missing:
        report.add(gt[n].path or f"GT '{n}'", "no-pred",
                   "has no prediction file: evaluated as a sequence without predictions (every GT joint "
                   "missed)")
    extra = [n for n in pred if n not in gt]
    if extra:
        names = ", ".join(os.path.basename(pred[n].path or n) for n in extra[:5])
        more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        report.add("predictions", "no-gt", f"{len(extra)} prediction sequence(s) without GT, ignored: "
                   f"{names}{more}")
    return [prepare_sequence(n, g, pred.get(n), report) for n, g in gt.items()]
