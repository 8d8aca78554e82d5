"""The online tracker (paper §5.2): frame by frame, the tracks' last poses are compared with the frame's
candidates by one cue, matched greedily in score order (or by the Hungarian method), unmatched candidates
start new tracks and tracks unmatched for more than ``max_age`` processed frames end. After the video:
the optional merge of broken tracks ("Ours + Merge"), then the output's joint threshold and minimum track
length (``corrtrack.tracking.output``).

The tracker runs no network: it reads a :class:`~corrtrack.tracking.precompute.VideoCache`, so tracking
one video with another cue or another ``tau_corr`` costs milliseconds. Only the merge runs the
correspondence net, on the few track ends it considers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from corrtrack.assignment import linear_sum_assignment
from corrtrack.tracking.config import TrackingConfig
from corrtrack.tracking.cues import correspondence_similarity, make_cue
from corrtrack.tracking.precompute import Models, VideoCache, _peak_normalise


def match(sim: np.ndarray, min_similarity: float, solver: str = "greedy") -> list[tuple[int, int]]:
    """Match rows (tracks) to columns (candidates) of a (T, P) similarity; a pair needs a similarity
    > ``min_similarity``. ``greedy``: repeatedly take the most similar free pair (ties: lower row, then
    lower column); ``hungarian``: the assignment maximising the summed similarity of eligible pairs.
    Returns [(row, column)], in decreasing similarity."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.size == 0:
        return []
    ok = sim > min_similarity
    if not ok.any():
        return []
    if solver == "greedy":
        rows, cols = np.nonzero(ok)
        order = np.lexsort((cols, rows, -sim[rows, cols]))
        used_r, used_c, out = set(), set(), []
        for i in order:
            r, c = int(rows[i]), int(cols[i])
            if r in used_r or c in used_c:
                continue
            used_r.add(r)
            used_c.add(c)
            out.append((r, c))
        return out
    if solver == "hungarian":
        w = np.where(ok, sim - min(min_similarity, 0.0), 0.0)
        r, c = linear_sum_assignment(w, maximize=True)
        pairs = [(int(i), int(j)) for i, j in zip(r, c) if ok[i, j]]
        return sorted(pairs, key=lambda rc: (-sim[rc], rc))
    raise ValueError(f"unknown solver {solver!r} (greedy | hungarian)")


@dataclass
class Track:
    """One track: ``obs`` lists its poses as (processed-frame position k, video frame f, candidate index)."""

    id: int
    obs: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def last(self) -> tuple[int, int, int]:
        return self.obs[-1]

    @property
    def first(self) -> tuple[int, int, int]:
        return self.obs[0]


@dataclass
class TrackResult:
    """The tracks of one video for one cue.

    ids: {video frame f: (P_f,) track id of each candidate of f, -1 for dropped candidates (too few
    joints, release duplicates)}; tracks: {id: Track}; merged: how many track pairs the merge joined;
    seconds: time spent in association (similarity + matching) and in the merge."""

    cache: VideoCache
    config: TrackingConfig
    cue: str
    ids: dict[int, np.ndarray]
    tracks: dict[int, Track]
    merged: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def to_sequence(self):
        """The PoseTrack prediction (joint threshold and minimum track length applied)."""
        from corrtrack.tracking.output import to_sequence

        return to_sequence(self)


def track(cache: VideoCache, config: TrackingConfig | None = None, cue: str | None = None,
          models: Models | None = None) -> TrackResult:
    """Track one precomputed video with one cue (default ``config.cue``). ``models.corr`` is needed only
    for ``config.merge``."""
    config = config or cache.config
    cue = cue or config.cue
    cue_obj = make_cue(cue, config)
    min_sim = config.min_similarity(cue)
    window = max(int(config.max_age), 0) + 1
    if window > cache.window:
        raise ValueError(f"max_age={config.max_age} needs pairs {window} processed frames apart but the "
                         f"precomputation of {cache.video.name} reaches {cache.window} (max_age={cache.window - 1})")
    t0 = time.perf_counter()
    tracks: dict[int, Track] = {}
    active: list[Track] = []
    ids: dict[int, np.ndarray] = {}
    next_id = 1
    mjt, kmin = config.match_joint_threshold, config.min_candidate_joints
    for k, f in enumerate(cache.frames):
        cands = cache.candidates[f]
        frame_ids = np.full(len(cands), -1, dtype=np.int64)
        sc = cands.poses[:, :, 2]
        usable = ((sc >= mjt) & (sc > 0)).sum(1) >= kmin if len(cands) else np.zeros(0, dtype=bool)
        active = [t for t in active if k - t.last[0] <= window]
        matched_rows, matched_cols = [], []
        if active and usable.any():
            sim = cue_obj.similarity(cache, [(t.last[1], t.last[2]) for t in active], f)
            sim = np.where(usable[None, :], sim, -np.inf)
            for r, c in match(sim, min_sim, config.solver):
                active[r].obs.append((k, f, c))
                frame_ids[c] = active[r].id
                matched_rows.append(r)
                matched_cols.append(c)
        drop = ~usable
        if config.duplicate_ratio is not None and hasattr(cue_obj, "duplicates") and active and len(cands):
            drop |= cue_obj.duplicates(np.asarray(matched_rows), np.asarray(matched_cols))
        for c in range(len(cands)):
            if frame_ids[c] >= 0 or drop[c]:
                continue
            t = Track(next_id, [(k, f, c)])
            next_id += 1
            tracks[t.id] = t
            active.append(t)
            frame_ids[c] = t.id
        ids[f] = frame_ids
    res = TrackResult(cache, config, cue, ids, tracks, seconds={"association": time.perf_counter() - t0})
    if config.merge:
        t1 = time.perf_counter()
        if models is None or models.corr is None:
            raise ValueError("merge=true needs the correspondence net (models.corr / --corr-ckpt)")
        res.merged = merge_tracks(res, models.corr)
        res.seconds["merge"] = time.perf_counter() - t1
    return res


def merge_tracks(result: TrackResult, corr_model) -> int:
    """"Ours + Merge": join track A to track B when B starts 1..``merge_gap`` video frames after A's last
    pose and eq. 6 between A's last pose propagated to B's first frame and B's first pose is >=
    ``merge_threshold`` (the correspondence net is not limited to adjacent frames). Pairs are joined
    greedily, most similar first; each track end and each track start joins at most once. Track ids in
    ``result`` are rewritten in place. Returns the number of joins."""
    cfg, cache = result.config, result.cache
    tracks = result.tracks
    if len(tracks) < 2:
        return 0
    ends: dict[int, list[int]] = {}                     # last frame -> track ids ending there
    for t in tracks.values():
        ends.setdefault(t.last[1], []).append(t.id)
    starts: dict[int, list[int]] = {}
    for t in tracks.values():
        starts.setdefault(t.first[1], []).append(t.id)
    video = cache.video
    feats: dict[int, object] = {}

    def features(f: int):
        if f not in feats:
            feats[f] = corr_model.frame_features(video.image(f))
        return feats[f]

    scored = []
    for e, enders in sorted(ends.items()):
        later = [s for s in starts if e < s <= e + cfg.merge_gap]
        if not later:
            continue
        poses_a = np.stack([cache.candidates[e].poses[tracks[i].last[2]] for i in enders])
        for s in sorted(later):
            begin = [j for j in starts[s] if j not in enders]
            if not begin:
                continue
            poses_b = np.stack([cache.candidates[s].poses[tracks[j].first[2]] for j in begin])
            res = corr_model.propagate_both(features(e), features(s), poses_a)
            maps = res.maps if corr_model.refinement is not None else _peak_normalise(res.maps)
            vals = corr_model.lookup(maps, poses_b, features(s))                  # (A, B, 17)
            sim = correspondence_similarity(vals, poses_a[:, :, 2], poses_b[:, :, 2], cfg.tau_corr,
                                            cfg.match_joint_threshold, cfg.corr_min_joints)
            for ia, i in enumerate(enders):
                for ib, j in enumerate(begin):
                    if sim[ia, ib] >= cfg.merge_threshold and tracks[i].last[0] < tracks[j].first[0]:
                        scored.append((float(sim[ia, ib]), i, j))
    scored.sort(key=lambda x: (-x[0], x[1], x[2]))
    parent: dict[int, int] = {}
    used_end, used_start = set(), set()

    def root(i: int) -> int:
        while i in parent:
            i = parent[i]
        return i

    joins = 0
    for _, i, j in scored:
        if i in used_end or j in used_start or root(i) == root(j):
            continue
        used_end.add(i)
        used_start.add(j)
        parent[j] = i
        joins += 1
    if not joins:
        return 0
    new_tracks: dict[int, Track] = {}
    for tid in sorted(tracks):
        r = root(tid)
        new_tracks.setdefault(r, Track(r)).obs.extend(tracks[tid].obs)
    for t in new_tracks.values():
        t.obs.sort()
    for f, arr in result.ids.items():
        result.ids[f] = np.asarray([root(int(i)) if i >= 0 else -1 for i in arr], dtype=np.int64)
    result.tracks = new_tracks
    return joins
