"""Per-video precomputation: everything the tracker needs that does not depend on the cue, on ``tau_corr``
or on the output thresholds, computed once with the networks so that every cue and every sweep point
reuses it.

For each processed frame f (in video order): the candidate poses (GT poses, or boxes -> pose estimator ->
OKS-NMS), the poses recovered from the previous processed frame (paper §5.1) and the re-ID embeddings of
the candidates' boxes. For each pair (a, b) of a processed frame b and one of the ``max_age + 1``
processed frames before it: the correspondence values of every candidate of a at every joint of every
candidate of b (the ``C_j^q(j^p)`` of eq. 6), a's candidates propagated into b (argmax of their maps) and
a's candidates moved by DIS optical flow.

Per-frame network work happens once: each frame passes the correspondence trunk once (its features are
kept while later frames need them) and each frame pair costs one batched Siamese + refinement forward for
all candidates of a; recovery and association use the same forward.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import numpy as np
import torch

from corrtrack.flow import dis_flow, warp_poses_by_flow
from corrtrack.keypoints import POSETRACK_SIGMAS, coco_to_posetrack
from corrtrack.oks import oks_matrix, pose_area
from corrtrack.pose import pose_score
from corrtrack.tracking.candidates import (Candidates, gt_boxes, gt_pose_candidates, nms, propagated_box,
                                          shifted_box)
from corrtrack.tracking.config import CUES, TrackingConfig
from corrtrack.tracking.video import TrackingInputError, Video

PARTS = ("corr", "flow", "reid")          # optional parts of a precomputation, by the cue that needs them
# what the seconds of a precomputation are spent on: reading frames, the pose net (boxes and recovery), the
# correspondence trunk, the per-pair correspondence work (Siamese affinities + refinement forward + argmax +
# look-ups), recovery's own bookkeeping (boxes, OKS, NMS), DIS flow, re-ID embeddings
TIMERS = ("io", "pose", "features", "refinement", "recovery", "flow", "reid")


class Embedder(Protocol):
    """A person re-ID model: ``embed(frame (H, W, 3) uint8 RGB, boxes (N, 4) [x, y, w, h] image pixels)
    -> (N, D)`` L2-normalised embeddings."""

    def embed(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...


@dataclass
class Models:
    """The networks tracking uses; any may be None when the run does not need it. ``pose``: a
    ``corrtrack.pose.PoseEstimator`` (boxes -> poses, recovery); ``corr``: a
    ``corrtrack.correspondence.CorrespondenceModel`` (recovery, the corr cue, merge); ``reid``: an
    :class:`Embedder` (the reid cue); ``files``: where they were loaded from."""

    pose: Any = None
    corr: Any = None
    reid: Any = None
    # {"pose" | "corr" | "reid": the checkpoint file each was loaded from} (keys of the disk cache,
    # corrtrack.tracking.store); empty for nets built in memory
    files: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairData:
    """What links processed frame ``a`` to the later processed frame ``b`` (video frame indices).

    corr: (Q, P, 17) map value of a's candidate q for joint j at b's candidate p's joint j (0 where p's
    joint is absent or outside the map); propagated: (Q, 17, 3) a's candidates propagated into b: x, y in
    image-b pixels and the map value at the argmax (0 for joints that were not queried); flow: (Q, 17, 3)
    a's candidates moved by the a -> b flow (scores unchanged)."""

    a: int
    b: int
    corr: np.ndarray | None = None
    propagated: np.ndarray | None = None
    flow: np.ndarray | None = None


@dataclass
class VideoCache:
    """The precomputation of one video (see the module docstring).

    frames: the processed video frame indices, in order; candidates / embeddings / image_hw: per processed
    frame; pairs: {(a, b): PairData}; parts: which optional parts were computed ("corr", "flow", "reid");
    corr_maps: "refined" or "siamese" (the maps the corr values come from; Siamese softmax maps are divided
    by their peak so that both lie in [0, 1]); config: the settings it was computed with (only
    ``precompute_key()`` matters); seconds: time per stage; forwards: {"trunk": frames passed through the
    correspondence trunk, "pair": batched Siamese (+ refinement) forwards, one per frame pair}; window: how many earlier processed frames each frame is paired with."""

    video: Video
    frames: list[int]
    config: TrackingConfig
    candidates: dict[int, Candidates] = field(default_factory=dict)
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)
    image_hw: dict[int, tuple[int, int]] = field(default_factory=dict)
    pairs: dict[tuple[int, int], PairData] = field(default_factory=dict)
    parts: set[str] = field(default_factory=set)
    corr_maps: str | None = None
    window: int = 1
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    forwards: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def pair(self, a: int, b: int) -> PairData:
        try:
            return self.pairs[(a, b)]
        except KeyError:
            raise KeyError(f"video {self.video.name}: no precomputed pair ({a}, {b}); pairs reach back "
                           f"{self.window} processed frame(s) (max_age + 1)") from None

    def require(self, part: str) -> None:
        if part not in self.parts:
            raise ValueError(f"video {self.video.name}: the precomputation has no '{part}' part; compute it "
                             f"with precompute_video(..., cues=[...'{_CUE_OF_PART[part]}'...])")

    @property
    def num_candidates(self) -> int:
        return sum(len(c) for c in self.candidates.values())


_CUE_OF_PART = {"corr": "corr", "flow": "flow", "reid": "reid"}


def parts_for(cues: Iterable[str], config: TrackingConfig) -> set[str]:
    """The optional parts the given cues need (merge needs no precomputed part: it runs after tracking)."""
    out = set()
    for c in cues:
        if c not in CUES:
            raise ValueError(f"unknown cue {c!r} (one of {', '.join(CUES)})")
        if c in PARTS:
            out.add(c)
    return out


def processed_frames(video: Video, config: TrackingConfig) -> list[int]:
    """The frames the tracker steps through: with GT boxes or GT poses the frames holding GT persons (the
    only ones with input); with detections every frame, or the labelled ones with ``labeled_only``."""
    if config.boxes in ("gt", "gt-poses") or config.labeled_only:
        return video.labeled()
    return list(range(len(video)))


def check_models(config: TrackingConfig, models: Models, parts: set[str], reuse: bool = False) -> None:
    """One clear error when a network the run needs is missing."""
    if not reuse and config.boxes in ("gt", "detections") and models.pose is None:
        raise TrackingInputError(f"boxes={config.boxes} needs a pose estimator (--pose-ckpt)")
    if "corr" in parts and models.corr is None:
        raise TrackingInputError("the corr cue needs a correspondence checkpoint (--corr-ckpt)")
    if not reuse and config.recovery and config.boxes != "gt-poses" and models.corr is None:
        raise TrackingInputError("recovery needs a correspondence checkpoint (--corr-ckpt), or recovery=false")
    if "reid" in parts and models.reid is None:
        raise TrackingInputError("the reid cue needs a re-ID model (--reid-ckpt)")


class _Timer:
    def __init__(self, seconds: dict[str, float], key: str):
        self.seconds, self.key = seconds, key

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds[self.key] += time.perf_counter() - self.t0


@dataclass
class _Pass:
    """The state of one pass over a video's frames: what is computed, and the trunk features and images
    kept while later frames still pair with them."""

    video: Video
    config: TrackingConfig
    models: Models
    cache: VideoCache
    parts: set[str]
    reuse: bool
    recover: bool
    use_corr: bool
    need_images: bool
    detections: dict | None
    feats: dict[int, Any] = field(default_factory=dict)
    images: dict[int, np.ndarray] = field(default_factory=dict)


def precompute_video(video: Video, config: TrackingConfig, models: Models, cues: Iterable[str] = ("corr",),
                     detections: dict | None = None, base: VideoCache | None = None,
                     progress: bool = False) -> VideoCache:
    """Run the networks over one video for the given cues (see the module docstring).

    detections: {image_id: (N, 5) [x, y, w, h, score]} (needed with ``boxes="detections"``; boxes
    scoring below ``config.detection_min_score`` are skipped). ``base``: an earlier precomputation of the
    same video whose candidates (and whatever parts it has) are reused; only the missing parts are
    computed and nothing is recovered again (e.g. a training callback that caches the candidates, flow
    and re-ID once and recomputes only the corr part with each new correspondence net).
    Raises TrackingInputError for missing networks or unreadable images."""
    from tqdm import tqdm

    run = _start(video, config, models, cues, detections, base)
    frames, window = run.cache.frames, run.cache.window
    for k, f in enumerate(tqdm(frames, desc=video.name, unit="frame", leave=False, disable=not progress)):
        earlier = frames[max(0, k - window):k][::-1]                 # most recent first
        img = None
        if run.need_images:
            with _Timer(run.cache.seconds, "io"):
                img = video.image(f)
            run.cache.image_hw[f] = img.shape[:2]
        det = run.cache.candidates[f] if run.reuse else _detect(run, f, img)
        props = _correspond(run, f, img, earlier)
        cands = det
        if run.recover and earlier and earlier[0] in props:             # paper §5.1
            sec, a = run.cache.seconds, earlier[0]
            t0, pose0 = time.perf_counter(), sec["pose"]
            cands = recover_poses(det, run.cache.candidates[a], props[a][0], img, models.pose, config, sec)
            sec["recovery"] += time.perf_counter() - t0 - (sec["pose"] - pose0)   # the pose net is "pose"
        run.cache.candidates[f] = cands
        _pair_data(run, f, img, earlier, props)
        if "reid" in run.parts:
            _embed(run, f, img)
        # keep only what later frames need
        if "flow" in run.parts:
            run.images[f] = img
        keep = set(frames[max(0, k + 1 - window):k + 1])
        for d in (run.feats, run.images):
            for old in [x for x in d if x not in keep]:
                del d[old]
    return run.cache


def _start(video: Video, config: TrackingConfig, models: Models, cues: Iterable[str], detections: dict | None,
           base: VideoCache | None) -> _Pass:
    """Check the inputs and set up the cache (a copy of ``base``'s content when given) and the pass."""
    parts = parts_for(cues, config)
    reuse = base is not None
    if reuse:
        parts -= base.parts
    check_models(config, models, parts, reuse)
    frames = list(base.frames) if reuse else processed_frames(video, config)
    window = max(int(config.max_age), 0) + 1
    cache = VideoCache(video=video, frames=frames, config=config, window=window)
    if reuse:
        cache.candidates, cache.embeddings = dict(base.candidates), dict(base.embeddings)
        cache.image_hw = dict(base.image_hw)
        cache.pairs = {k: PairData(v.a, v.b, v.corr, v.propagated, v.flow) for k, v in base.pairs.items()}
        cache.parts, cache.corr_maps = set(base.parts), base.corr_maps
    cache.parts |= parts
    recover = (not reuse and config.recovery and config.boxes != "gt-poses" and models.corr is not None
               and models.pose is not None)
    use_corr = "corr" in parts or recover
    if use_corr:
        cache.corr_maps = "refined" if models.corr.refinement is not None else "siamese"
    need_images = use_corr or bool(parts & {"flow", "reid"}) or (not reuse and config.boxes != "gt-poses")
    if not reuse and config.boxes == "detections" and detections is None:
        raise TrackingInputError(f"video {video.name}: boxes=detections but no detections were given")
    return _Pass(video, config, models, cache, parts, reuse, recover, use_corr, need_images, detections)


def _detect(run: _Pass, f: int, img: np.ndarray | None) -> Candidates:
    """The detected candidates of frame f: GT poses, or boxes (GT or detections) -> pose net -> OKS-NMS."""
    config, gt_frame = run.config, run.video.gt.frames[f]
    if config.boxes == "gt-poses":
        return gt_pose_candidates(gt_frame)
    if config.boxes == "gt":
        boxes, box_scores = gt_boxes(gt_frame)
    else:
        d = run.detections.get(gt_frame.image_id, np.zeros((0, 5)))
        d = d[d[:, 4] >= config.detection_min_score]
        boxes, box_scores = d[:, :4], d[:, 4]
    with _Timer(run.cache.seconds, "pose"):
        poses = estimate_poses(run.models.pose, img, boxes)
    det = Candidates(poses, boxes, pose_score(poses, box_scores) if len(poses) else np.zeros(0),
                     np.zeros(len(poses), dtype=bool))
    return nms(det, config.nms_oks, config.nms_joint_threshold)


def _correspond(run: _Pass, f: int, img: np.ndarray | None, earlier: list[int]) -> dict[int, tuple]:
    """One trunk pass for frame f, then one batched forward per pair (a, f) for the earlier frames a
    (only the previous one when just recovery needs it). Returns {a: (propagated (Q, 17, 3), maps)}."""
    if not run.use_corr:
        return {}
    corr, cache, props = run.models.corr, run.cache, {}
    with _Timer(cache.seconds, "features"):
        run.feats[f] = corr.frame_features(img)
    cache.forwards["trunk"] += 1
    for a in (earlier if "corr" in run.parts else earlier[:1]):
        qa = cache.candidates[a]
        if len(qa) == 0:
            continue
        with _Timer(cache.seconds, "refinement"), torch.no_grad():
            res = corr.propagate_both(run.feats[a], run.feats[f], qa.poses)
        cache.forwards["pair"] += 1
        maps = res.maps if corr.refinement is not None else _peak_normalise(res.maps)
        props[a] = (res.points, maps)
    return props


def _pair_data(run: _Pass, f: int, img: np.ndarray | None, earlier: list[int], props: dict[int, tuple]) -> None:
    """The association data of every pair (a, f): correspondence look-ups and propagated poses (corr),
    a's poses moved by DIS flow (flow)."""
    parts, cache, sec = run.parts, run.cache, run.cache.seconds
    if not parts & {"corr", "flow"}:
        return
    cands = cache.candidates[f]
    for a in earlier:
        pd = cache.pairs.setdefault((a, f), PairData(a, f))
        qa = cache.candidates[a]
        if "corr" in parts:
            if a in props:
                pts, maps = props[a]
                with _Timer(sec, "refinement"):
                    pd.corr = run.models.corr.lookup(maps, cands.poses, run.feats[f]).astype(np.float32)
                pd.propagated = pts
            else:
                pd.corr = np.zeros((len(qa), len(cands), 17), np.float32)
                pd.propagated = np.zeros((len(qa), 17, 3))
        if "flow" in parts:
            with _Timer(sec, "flow"):
                flow = dis_flow(run.images[a], img, run.config.flow_preset, run.config.flow_max_side)
                pd.flow = warp_poses_by_flow(qa.poses, flow)


def _embed(run: _Pass, f: int, img: np.ndarray) -> None:
    """L2-normalised re-ID embeddings (P, D) of frame f's candidate boxes."""
    cands = run.cache.candidates[f]
    with _Timer(run.cache.seconds, "reid"):
        e = run.models.reid.embed(img, cands.boxes) if len(cands) else np.zeros((0, 1))
    e = np.asarray(e, dtype=np.float32).reshape(len(cands), -1) if len(cands) else np.zeros((0, 1), np.float32)
    run.cache.embeddings[f] = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def estimate_poses(pose_estimator: Any, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Poses (P, 17, 3) in PoseTrack slots of the (P, 4) boxes of one frame, all boxes in one batch. A pose
    net of the COCO layout (not fine-tuned on PoseTrack) has its joints moved to the PoseTrack slots
    (head_bottom and head_top then stay absent)."""
    if len(boxes) == 0:
        return np.zeros((0, 17, 3))
    poses = pose_estimator.estimate([image], [np.asarray(boxes, dtype=np.float64)])[0]
    if getattr(pose_estimator, "layout", "posetrack") == "coco":
        poses = coco_to_posetrack(poses)
    return poses


def _peak_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Siamese softmax maps (sum 1 over the map, peaks ~1e-2) divided by their maximum: values in [0, 1]
    with 1 at the peak, comparable to the refinement's sigmoid maps and ``tau_corr``."""
    return maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def recover_poses(detected: Candidates, previous: Candidates, propagated: np.ndarray, image: np.ndarray,
                  pose_estimator: Any, config: TrackingConfig, seconds: dict[str, float] | None = None
                  ) -> Candidates:
    """Recover persons the boxes missed (paper §5.1, the release's thresholds by default).

    previous: the candidates of the previous processed frame; propagated: (Q, 17, 3) their joints
    propagated into this frame (x, y, map value, image pixels). For each of them (only the detected ones
    unless ``recovery_from_recovered``): box from the confident propagated joints, pose re-estimated in it,
    kept when it has enough confident joints and does not duplicate a detected pose (max OKS). Returns
    detected + recovered candidates after OKS-NMS."""
    src = np.arange(len(previous))
    if not config.recovery_from_recovered:
        src = src[~previous.recovered]
    hw = image.shape[:2]
    # only joints the previous pose detected (score >= the recovery joint threshold) count, as in the release
    pts = np.where((previous.poses[:, :, 2:3] >= config.recovery_joint_threshold), propagated, 0.0)
    if config.recovery_box == "shifted":
        boxes = [shifted_box(previous.boxes[q], previous.poses[q], pts[q], hw, config.recovery_corr_threshold,
                             config.recovery_min_joints) for q in src]
    else:
        boxes = [propagated_box(pts[q], hw, config.recovery_corr_threshold, config.recovery_min_joints,
                                config.recovery_box_margin) for q in src]
    source = np.asarray([q for q, b in zip(src, boxes) if b is not None], dtype=np.int64)
    boxes = np.asarray([b for b in boxes if b is not None]).reshape(-1, 4)
    if len(boxes) == 0:
        return detected
    t0 = time.perf_counter()
    poses = estimate_poses(pose_estimator, image, boxes)
    if seconds is not None:
        seconds["pose"] += time.perf_counter() - t0
    jt = config.recovery_joint_threshold
    ok = (poses[:, :, 2] >= jt).sum(1) >= config.recovery_min_pose_joints
    ok &= recovery_checks(poses, propagated[source], previous.poses[source, :, 2] >= jt, config)
    if len(detected) and ok.any():
        o = oks_matrix(poses, detected.poses, pose_area(poses, jt), POSETRACK_SIGMAS, min_score=jt)
        ok &= o.max(1) <= config.recovery_max_oks
    if not ok.any():
        return detected
    rec = Candidates(poses[ok], boxes[ok], pose_score(poses[ok]), np.ones(int(ok.sum()), dtype=bool))
    return nms(Candidates.concat([detected, rec]), config.nms_oks, config.nms_joint_threshold)


def recovery_checks(poses: np.ndarray, propagated: np.ndarray, source_joints: np.ndarray,
                    config: TrackingConfig) -> np.ndarray:
    """Our two extra tests of re-estimated poses (N, 17, 3) (both off at 0): the OKS of each with the
    propagated pose its box came from (N, 17, 3), over the joints its source pose detected ((N, 17) bool;
    area: the box of those propagated joints), must reach ``recovery_min_agreement``: the pose net found
    the person the correspondences point at, not another one or background; and the mean score of its
    joints (the slots in use, score > 0) must reach ``recovery_min_mean_score``. Returns (N,) bool."""
    ok = np.ones(len(poses), dtype=bool)
    if len(poses) == 0:
        return ok
    if config.recovery_min_mean_score > 0:
        s = poses[:, :, 2]
        mean = np.where(s > 0, s, 0.0).sum(1) / np.maximum((s > 0).sum(1), 1)
        ok &= mean >= config.recovery_min_mean_score
    if config.recovery_min_agreement > 0:
        ref = np.concatenate([propagated[:, :, :2], source_joints[:, :, None].astype(np.float64)], axis=2)
        agree = np.diag(oks_matrix(ref, poses, pose_area(ref, 0.5), POSETRACK_SIGMAS, min_score=0.5))
        ok &= agree >= config.recovery_min_agreement
    return ok
