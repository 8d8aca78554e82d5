"""CLEAR-MOT per joint: poseval's frame selection plus two matching engines.

``engine="motmetrics"`` is the reference: one ``motmetrics.MOTAccumulator`` per joint and sequence and one
``update`` per frame and joint, exactly as poseval calls it. ``engine="fast"`` (default) is a vectorised
re-implementation of ``MOTAccumulator.update`` that processes all 15 joints of a frame at once:

1. keep previous matches: object o was last matched to hypothesis h, h is present and their distance is
   valid -> MATCH (objects in order; a hypothesis claimed by an earlier object is taken);
2. the remaining valid pairs: when every object and hypothesis of a joint has at most one valid partner
   the optimal assignment is exactly those pairs; otherwise the same minimum-cost assignment motmetrics
   solves (same cost matrix, same expensive-edge constant, SciPy's solver). A pair whose object was last
   matched to another hypothesis is a SWITCH, else a MATCH;
3. unmatched objects are MISSes, unmatched hypotheses FPs.
``tests/test_evaluation_engine.py`` proves both engines produce the same events on random sets.

Frame selection (``strict=False``, poseval's official numbers): the last frame of each sequence is left
out; a frame without GT persons or without predicted persons is entered as one dummy object and one dummy
hypothesis per joint (one miss and one false positive). ``strict=True`` enters every frame with its real
objects and hypotheses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corrtrack.assignment import linear_sum_assignment
from corrtrack.evaluation.prepare import DIST_THRESH, J, PreparedFrame, PreparedSequence

DUMMY = -1          # object / hypothesis id of poseval's placeholder entries

# Event record: (joint, frame position in the MOT frame list, type, object index, hypothesis index)
Event = tuple[int, int, str, int | None, int | None]


@dataclass
class MotCounts:
    """Per-joint CLEAR-MOT counts (arrays of 15)."""

    objects: np.ndarray
    matches: np.ndarray
    switches: np.ndarray
    misses: np.ndarray
    false_positives: np.ndarray
    sum_dist: np.ndarray

    @classmethod
    def zeros(cls) -> "MotCounts":
        return cls(*(np.zeros(J, dtype=np.int64) for _ in range(5)), np.zeros(J))

    def __iadd__(self, other: "MotCounts") -> "MotCounts":
        for k in ("objects", "matches", "switches", "misses", "false_positives", "sum_dist"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        return self


def mot_frames(seq: PreparedSequence, strict: bool) -> list[PreparedFrame | None]:
    """The frames entered into MOT for one sequence; None marks a dummy frame (poseval quirk)."""
    if strict:
        return list(seq.frames)
    out: list[PreparedFrame | None] = []
    for fr in seq.frames[:-1]:                      # quirk: the last frame with GT is left out
        out.append(fr if len(fr.gid) and len(fr.pid) else None)
    return out


# --------------------------------------------------------------------------------------- assignment

def _lsa(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment with NaN = forbidden, solved like motmetrics' SciPy backend.

    Forbidden edges get a constant large enough that the optimum first maximises the number of allowed
    pairs (l > (2r - 1) c for costs in [-c, c], r = min(shape)); pairs on forbidden edges are dropped.
    The solver returns SciPy's assignment (``corrtrack.assignment``), ties included.
    """
    valid = np.isfinite(costs)
    if valid.all():
        finite = costs
    else:
        c = np.abs(costs[valid]).max() + 1
        finite = np.where(valid, costs, 2 * min(costs.shape) * c + 1)
    r, k = linear_sum_assignment(finite)
    keep = valid[r, k]
    return r[keep], k[keep]


def _assign(valid: np.ndarray, cost: np.ndarray, rows_ok: np.ndarray, cols_ok: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step-2 assignment for all joints: (joint, row, col) of the chosen pairs.

    valid: (15, G, P) pairs still allowed; cost: (15, G, P) distances; rows_ok / cols_ok: (15, G) / (15, P)
    which objects / hypotheses take part for that joint (the matrix motmetrics sees for the joint).
    """
    rc = valid.sum(2)
    cc = valid.sum(1)
    hard = (rc > 1).any(1) | (cc > 1).any(1)
    if not hard.any():
        return np.nonzero(valid)
    jj, gg, pp = np.nonzero(valid & ~hard[:, None, None])
    out_j, out_g, out_p = [jj], [gg], [pp]
    for j in np.nonzero(hard)[0]:
        rows = np.nonzero(rows_ok[j])[0]
        cols = np.nonzero(cols_ok[j])[0]
        sub = np.where(valid[j][np.ix_(rows, cols)], cost[j][np.ix_(rows, cols)], np.nan)
        r, k = _lsa(sub)
        out_j.append(np.full(len(r), j))
        out_g.append(rows[r])
        out_p.append(cols[k])
    return np.concatenate(out_j), np.concatenate(out_g), np.concatenate(out_p)


# ------------------------------------------------------------------------------------------ engines

def run_fast(frames: list[PreparedFrame | None], n_gt_ids: int, n_pred_ids: int,
             events: list[Event] | None = None) -> MotCounts:
    """Vectorised CLEAR-MOT over one sequence's MOT frames (see module docstring)."""
    cnt = MotCounts.zeros()
    last = np.full((J, max(n_gt_ids, 1)), -1, dtype=np.int64)     # last matched hypothesis per object
    pos = np.full(max(n_pred_ids, 1), -1, dtype=np.int64)          # hypothesis index -> column in frame
    for fi, fr in enumerate(frames):
        if fr is None:
            cnt.objects += 1
            cnt.misses += 1
            cnt.false_positives += 1
            if events is not None:
                for j in range(J):
                    events.append((j, fi, "MISS", DUMMY, None))
                    events.append((j, fi, "FP", None, DUMMY))
            continue
        gmask_t, pmask_t = fr.gmask.T, fr.pmask.T                     # (15, G), (15, P)
        n_obj, n_hyp = gmask_t.sum(1), pmask_t.sum(1)
        cnt.objects += n_obj
        G, P = len(fr.gid), len(fr.pid)
        if G == 0 or P == 0:
            cnt.misses += n_obj
            cnt.false_positives += n_hyp
            if events is not None:
                _unmatched_events(events, fi, fr, gmask_t, pmask_t, np.zeros((J, G), bool),
                                  np.zeros((J, P), bool))
            continue
        dist = fr.dist.transpose(2, 1, 0)                             # (15, G, P)
        valid = dist <= DIST_THRESH
        gid, pid = fr.gid, fr.pid
        pos[pid] = np.arange(P)
        # 1. carry previous matches forward
        prev = last[:, gid]                                           # (15, G)
        cand = np.where(prev >= 0, pos[np.maximum(prev, 0)], -1)
        j1, g1 = np.nonzero(cand >= 0)
        p1 = cand[j1, g1]
        ok = valid[j1, g1, p1]
        j1, g1, p1 = j1[ok], g1[ok], p1[ok]
        row_used = np.zeros((J, G), dtype=bool)
        col_used = np.zeros((J, P), dtype=bool)
        row_used[j1, g1] = True
        col_used[j1, p1] = True
        if len(j1) > 1 and np.count_nonzero(col_used) < len(j1):
            # two objects claim the same hypothesis: the earlier object (in file order) takes it
            _, first = np.unique(j1 * P + p1, return_index=True)
            first.sort()
            j1, g1, p1 = j1[first], g1[first], p1[first]
            row_used[:] = False
            row_used[j1, g1] = True
        # 2. assignment of the rest
        rest = valid & ~row_used[:, :, None] & ~col_used[:, None, :]
        if rest.any():
            j2, g2, p2 = _assign(rest, dist, gmask_t, pmask_t)
            o2 = gid[g2]
            was = last[j2, o2]
            sw = (was >= 0) & (was != pid[p2])
            last[j2, o2] = pid[p2]
            row_used[j2, g2] = True
            col_used[j2, p2] = True
        else:
            j2 = g2 = p2 = np.zeros(0, dtype=np.int64)
            sw = np.zeros(0, dtype=bool)
        n_sw = np.bincount(j2[sw], minlength=J)
        n_matched = np.bincount(j1, minlength=J) + np.bincount(j2, minlength=J)
        cnt.matches += n_matched - n_sw
        cnt.switches += n_sw
        cnt.misses += n_obj - n_matched
        cnt.false_positives += n_hyp - n_matched
        cnt.sum_dist += (np.bincount(j1, weights=dist[j1, g1, p1], minlength=J)
                         + np.bincount(j2, weights=dist[j2, g2, p2], minlength=J))
        if events is not None:
            for j, g, p in zip(j1, g1, p1):
                events.append((int(j), fi, "MATCH", int(gid[g]), int(pid[p])))
            for j, g, p, s in zip(j2, g2, p2, sw):
                events.append((int(j), fi, "SWITCH" if s else "MATCH", int(gid[g]), int(pid[p])))
            _unmatched_events(events, fi, fr, gmask_t, pmask_t, row_used, col_used)
        pos[pid] = -1
    return cnt


def _unmatched_events(events, fi, fr, gmask_t, pmask_t, row_used, col_used) -> None:
    for j, g in zip(*np.nonzero(gmask_t & ~row_used)):
        events.append((int(j), fi, "MISS", int(fr.gid[g]), None))
    for j, p in zip(*np.nonzero(pmask_t & ~col_used)):
        events.append((int(j), fi, "FP", None, int(fr.pid[p])))


def run_motmetrics(frames: list[PreparedFrame | None], events: list[Event] | None = None) -> MotCounts:
    """Reference engine: motmetrics, one accumulator per joint, one update per frame and joint."""
    import motmetrics as mm

    accs = [mm.MOTAccumulator(auto_id=True) for _ in range(J)]
    for fr in frames:
        for j in range(J):
            if fr is None:
                accs[j].update([DUMMY], [DUMMY], np.full((1, 1), np.nan))
                continue
            rows = np.nonzero(fr.gmask[:, j])[0]
            cols = np.nonzero(fr.pmask[:, j])[0]
            d = fr.dist[np.ix_(cols, rows, [j])][:, :, 0].T               # (objects, hypotheses)
            d = np.where(d <= DIST_THRESH, d, np.nan)
            accs[j].update(fr.gid[rows].tolist(), fr.pid[cols].tolist(), d)
    cnt = MotCounts.zeros()
    for j, acc in enumerate(accs):
        if not frames:
            continue
        ev = acc.mot_events
        types = ev["Type"].astype(str).to_numpy()
        det = (types == "MATCH") | (types == "SWITCH")
        cnt.matches[j] = int((types == "MATCH").sum())
        cnt.switches[j] = int((types == "SWITCH").sum())
        cnt.misses[j] = int((types == "MISS").sum())
        cnt.false_positives[j] = int((types == "FP").sum())
        cnt.objects[j] = cnt.matches[j] + cnt.switches[j] + cnt.misses[j]
        cnt.sum_dist[j] = float(ev["D"].to_numpy()[det].sum())
        if events is not None:
            frame_ids = ev.index.get_level_values("FrameId").to_numpy()
            oids, hids = ev["OId"].to_numpy(), ev["HId"].to_numpy()
            for f, t, o, h in zip(frame_ids, types, oids, hids):
                if t in ("MATCH", "SWITCH", "MISS", "FP"):
                    events.append((j, int(f), t, None if np.isnan(o) else int(o),
                                   None if np.isnan(h) else int(h)))
    return cnt


def evaluate_mot(seqs: list[PreparedSequence], strict: bool = False, engine: str = "fast",
                 events: dict[str, list[Event]] | None = None) -> MotCounts:
    """Sum the per-joint counts over all sequences. ``events``, if given, receives each sequence's events."""
    if engine not in ("fast", "motmetrics"):
        raise ValueError(f"unknown MOT engine {engine!r}; expected 'fast' or 'motmetrics'")
    total = MotCounts.zeros()
    for seq in seqs:
        frames = mot_frames(seq, strict)
        ev: list[Event] | None = [] if events is not None else None
        if engine == "fast":
            total += run_fast(frames, len(seq.gt_ids), len(seq.pred_ids), ev)
        else:
            total += run_motmetrics(frames, ev)
        if events is not None:
            events[seq.name] = ev
    return total
