"""Tracking (paper §5): hand-built cases with known answers for the cues, matching, track birth and end,
merge, recovery, joint threshold and minimum track length, the output format and the config."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from corrtrack.correspondence import CorrespondenceModel
from corrtrack.evaluation import evaluate
from corrtrack.tracking import (Candidates, Models, PairData, TrackingConfig, TrackingConfigError, correspondence_similarity,
                                evaluate_cues, masked_oks, match, precompute_video, track, write_prediction)
from corrtrack.tracking.candidates import gt_boxes, person_box, propagated_box, shifted_box
from corrtrack.tracking.output import thresholded_pose
from corrtrack.tracking.precompute import recover_poses, recovery_checks
from tests.tracking_helpers import USED, PositionCodeNet, hand_cache, make_pose, make_video

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ the cues

def test_masked_oks_known_values():
    a = make_pose(100, 100)
    assert masked_oks(a[None], a[None], 0.1)[0, 0] == pytest.approx(1.0)
    far = make_pose(300, 100)
    assert masked_oks(a[None], far[None], 0.1)[0, 0] < 1e-6
    # a candidate joint scoring below the threshold counts as a miss: 1 of 15 counted joints lost
    b = a.copy()
    b[0, 2] = 0.05
    assert masked_oks(a[None], b[None], 0.1)[0, 0] == pytest.approx(14 / 15)
    # a reference joint scoring below the threshold is not counted at all
    c = a.copy()
    c[0, 2] = 0.05
    moved = a.copy()
    moved[0, :2] += 500
    assert masked_oks(c[None], moved[None], 0.1)[0, 0] == pytest.approx(1.0)


def test_eq6_correspondence_similarity():
    vals = np.zeros((1, 2, 17))
    vals[0, 0, :3] = [0.9, 0.2, 0.5]         # tau 0.3: joints 0 and 2 count -> (0.9 + 0.5) / 2
    vals[0, 1, :3] = [0.25, 0.1, 0.3]        # nothing strictly above tau -> 0
    ts = np.ones((1, 17))
    cs = np.ones((2, 17))
    s = correspondence_similarity(vals, ts, cs, tau=0.3, joint_threshold=0.1)
    assert s[0, 0] == pytest.approx(0.7) and s[0, 1] == 0.0
    cs[0, 2] = 0.05                          # the candidate did not detect joint 2: only joint 0 counts
    assert correspondence_similarity(vals, ts, cs, 0.3, 0.1)[0, 0] == pytest.approx(0.9)
    ts[0, 0] = 0.0                           # nor did the track joint 0: only joint 2 (undetected) -> 0
    assert correspondence_similarity(vals, ts, cs, 0.3, 0.1)[0, 0] == 0.0
    cs[0, 2] = ts[0, 0] = 1.0                # two joints pass: enough for min_joints 2, not for 3
    assert correspondence_similarity(vals, ts, cs, 0.3, 0.1, min_joints=2)[0, 0] == pytest.approx(0.7)
    assert correspondence_similarity(vals, ts, cs, 0.3, 0.1, min_joints=3)[0, 0] == 0.0


def _two_person_cache(parts=("corr", "flow", "reid")):
    video = make_video({1: {0: (80, 120), 1: (90, 120)}, 2: {0: (220, 120), 1: (210, 120)}}, 2)
    cache = hand_cache(video, {0: np.stack([make_pose(80, 120), make_pose(220, 120)]),
                               1: np.stack([make_pose(210, 120), make_pose(90, 120)])}, parts=parts)
    return cache


def test_each_cue_prefers_the_true_match():
    """Frame 1 lists the two persons in swapped order; every cue must say so."""
    cache = _two_person_cache()
    pd = cache.pairs[(0, 1)] = PairData(0, 1)
    pd.flow = np.stack([make_pose(90, 120), make_pose(210, 120)])           # the flow moved both exactly
    pd.corr = np.full((2, 2, 17), 0.05, np.float32)
    pd.corr[0, 1], pd.corr[1, 0] = 0.8, 0.6
    pd.propagated = pd.flow.copy()
    cache.embeddings = {0: np.eye(2, 4), 1: np.eye(2, 4)[::-1]}
    last = [(0, 0), (0, 1)]
    for cue in ("oks", "flow", "reid", "corr"):
        res = track(cache, TrackingConfig(cue=cue, joint_threshold=0.0), cue)
        assert res.ids[1].tolist() == res.ids[0][::-1].tolist(), cue
    from corrtrack.tracking import make_cue
    cfg = TrackingConfig()
    assert make_cue("flow", cfg).similarity(cache, last, 1)[0, 1] == pytest.approx(1.0)
    assert make_cue("reid", cfg).similarity(cache, last, 1).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    corr = make_cue("corr", cfg).similarity(cache, last, 1)
    assert corr[0, 1] == pytest.approx(0.8) and corr[1, 0] == pytest.approx(0.6) and corr[0, 0] == 0.0


def test_release_variant_scores_only_the_best_candidate_and_drops_duplicates():
    video = make_video({1: {0: (100, 120), 1: (100, 120)}}, 2)
    near = make_pose(103, 121)                                               # a second box on the same person
    cache = hand_cache(video, {0: make_pose(100, 120)[None],
                               1: np.stack([make_pose(100, 120), near, make_pose(250, 120)])}, parts=("corr",))
    pd = cache.pairs[(0, 1)] = PairData(0, 1)
    pd.propagated = make_pose(100, 120, score=0.9)[None]
    pd.corr = np.zeros((1, 3, 17), np.float32)
    pd.corr[0, 0, USED], pd.corr[0, 1, USED], pd.corr[0, 2, USED] = 0.9, 0.8, 0.0
    cfg = TrackingConfig.preset("release").replace(cue="corr", joint_threshold=0.0, min_track_length=1)
    from corrtrack.tracking import make_cue
    cue = make_cue("corr", cfg)
    sim = cue.similarity(cache, [(0, 0)], 1)
    assert sim[0, 0] == pytest.approx(1.0 + 0.9) and sim[0, 1] == 0 and sim[0, 2] == 0
    res = track(cache, cfg)
    assert res.ids[1][0] == res.ids[0][0]
    assert res.ids[1][1] == -1                       # the near-copy is dropped, not a new track
    assert res.ids[1][2] > res.ids[0][0]             # the far person starts a track
    res = track(cache, cfg.replace(duplicate_ratio=None))
    assert res.ids[1][1] > 0


# -------------------------------------------------------------------------------------- matching

def test_greedy_vs_hungarian():
    sim = np.array([[0.9, 0.8], [0.8, 0.1]])
    assert match(sim, 0.05, "greedy") == [(0, 0), (1, 1)]                 # takes 0.9 first: total 1.0
    assert sorted(match(sim, 0.05, "hungarian")) == [(0, 1), (1, 0)]     # total 1.6
    assert match(sim, 0.85, "greedy") == [(0, 0)]
    assert match(sim, 0.85, "hungarian") == [(0, 0)]
    assert match(np.zeros((0, 3)), 0.0) == []
    with pytest.raises(ValueError, match="solver"):
        match(sim, 0.0, "auction")


def test_track_birth_and_end_with_max_age():
    """Person 1 is missing in frame 2 (person 2 is there, so frame 2 is processed)."""
    pos1 = {0: (80, 120), 1: (82, 120), 3: (86, 120)}
    pos2 = {f: (230, 120) for f in range(4)}
    video = make_video({1: pos1, 2: pos2}, 4)
    poses = {f: np.stack([make_pose(*p[f]) for p in (pos1, pos2) if f in p]) for f in range(4)}
    cfg = TrackingConfig(cue="oks", joint_threshold=0.0)
    res = track(hand_cache(video, poses), cfg)
    assert len(res.tracks) == 3                              # person 1's track ends at frame 2; a new one starts
    assert res.ids[3][0] not in (res.ids[0][0],) and res.ids[3][1] == res.ids[0][1]
    cfg2 = cfg.replace(max_age=1)
    with pytest.raises(ValueError, match="max_age"):
        track(hand_cache(video, poses), cfg2)                # the pairs reach one frame back only
    res = track(hand_cache(video, poses, window=2), cfg2)
    assert len(res.tracks) == 2 and res.ids[3][0] == res.ids[0][0]


def test_merge_joins_a_broken_track(tmp_path):
    """A static person hidden in frames 4-5: tracking breaks the track, merge (zero-motion
    correspondences across the 3-frame gap) joins it again; a person elsewhere is not joined."""
    pos1 = {f: (80, 120) for f in (0, 1, 2, 3, 6, 7)}
    pos2 = {f: (230, 120) for f in range(8)}
    pos3 = {f: (160, 60) for f in (6, 7)}                   # a new person, starting where nobody ended
    video = make_video({1: pos1, 2: pos2, 3: pos3}, 8, root=tmp_path)
    poses = {f: np.stack([make_pose(*p[f]) for p in (pos1, pos2, pos3) if f in p]) for f in range(8)}
    corr = CorrespondenceModel(PositionCodeNet(), None, input_size=128)
    cfg = TrackingConfig(cue="oks", joint_threshold=0.0, tau_corr=0.3)
    res = track(hand_cache(video, poses), cfg)
    assert len(res.tracks) == 4
    res = track(hand_cache(video, poses), cfg.replace(merge=True, merge_gap=3), models=Models(corr=corr))
    assert res.merged == 1 and len(res.tracks) == 3
    assert res.ids[6][0] == res.ids[0][0] and res.ids[6][2] not in (res.ids[0][0], res.ids[0][1])
    res = track(hand_cache(video, poses), cfg.replace(merge=True, merge_gap=2), models=Models(corr=corr))
    assert res.merged == 0                                  # the gap (frames 3 -> 6) is longer than 2


# ---------------------------------------------------------------------------------------- recovery

class TemplatePose:
    """A pose 'estimator' for hand-built cases: the template pose centred in each box, joints scoring
    ``score`` (a test double with a known answer for the network)."""

    layout = "posetrack"

    def __init__(self, score=0.9):
        self.score, self.calls = score, []

    def estimate(self, frames, boxes):
        self.calls.append(len(boxes[0]))
        return [np.stack([make_pose(b[0] + b[2] / 2, b[1] + b[3] / 2 + 2.5, self.score) for b in bs]).reshape(-1, 17, 3)
                for bs in boxes]


def test_propagated_box():
    pts = np.zeros((17, 3))
    pts[:3] = [[50, 60, 0.5], [70, 90, 0.2], [55, 65, 0.05]]
    assert propagated_box(pts, (240, 320), 0.1, 3, 10.0) is None             # 2 joints >= 0.1 < 3
    pts[3] = [40, 80, 0.3]
    np.testing.assert_allclose(propagated_box(pts, (240, 320), 0.1, 3, 10.0), [30, 50, 50, 50])
    np.testing.assert_allclose(propagated_box(pts, (240, 320), 0.1, 3, 45.0), [0, 15, 115, 120])   # clipped


def test_shifted_box_keeps_the_size_and_follows_the_median_motion():
    src = make_pose(100, 120)
    pts = make_pose(100, 120, 0.0)
    pts[:, :2] += [12.0, -4.0]
    pts[[0, 5, 11], 2] = 0.5                                  # three confident joints, moved by (12, -4)
    pts[5, :2] += 200.0                                       # one of them an outlier: the median ignores it
    box = np.array([60.0, 40.0, 80.0, 160.0])
    np.testing.assert_allclose(shifted_box(box, src, pts, (240, 320), 0.1, 3), [72, 36, 80, 160])
    assert shifted_box(box, src, pts, (240, 320), 0.1, 4) is None          # 3 confident joints < 4
    np.testing.assert_allclose(shifted_box(box, src, pts, (180, 320), 0.1, 3), [72, 36, 80, 143])   # clipped
    cfg = TrackingConfig(recovery_box="shifted")
    prev = Candidates(src[None], box[None], np.ones(1), np.zeros(1, bool))
    est = TemplatePose()
    out = recover_poses(Candidates(), prev, pts[None], np.zeros((240, 320, 3), np.uint8), est, cfg)
    np.testing.assert_allclose(out.boxes, [[72, 36, 80, 160]])
    with pytest.raises(TrackingConfigError, match="recovery_box"):
        TrackingConfig(recovery_box="box")


def test_recovery_on_a_hand_built_frame():
    """Two persons in f-1, only one detected in f: the other is recovered from its propagated joints;
    a propagated pose that lands on the detected person is rejected (OKS with it > recovery_max_oks)."""
    prev = Candidates(np.stack([make_pose(80, 120), make_pose(230, 120)]), np.zeros((2, 4)), np.ones(2),
                      np.zeros(2, bool))
    det = Candidates(make_pose(80, 120)[None], np.zeros((1, 4)), np.ones(1), np.zeros(1, bool))
    propagated = np.stack([make_pose(80, 120, 0.8), make_pose(235, 120, 0.8)])
    est = TemplatePose()
    cfg = TrackingConfig()
    out = recover_poses(det, prev, propagated, np.zeros((240, 320, 3), np.uint8), est, cfg)
    assert len(out) == 2 and out.recovered.tolist() == [False, True]
    assert est.calls == [2]                                     # both boxes in one batch
    assert abs(out.poses[1, 11:13, 0].mean() - 235) < 1.0       # re-estimated where the person went
    # too few confident propagated joints: nothing to recover
    weak = propagated.copy()
    weak[1, 2:, 2] = 0.05                                      # 2 confident joints left, 3 needed
    assert len(recover_poses(det, prev, weak, np.zeros((240, 320, 3), np.uint8), TemplatePose(), cfg)) == 1
    # a re-estimated pose with too few confident joints is not kept
    assert len(recover_poses(det, prev, propagated, np.zeros((240, 320, 3), np.uint8), TemplatePose(0.05), cfg)) == 1
    # only detected poses of f-1 are propagated unless recovery_from_recovered
    prev_rec = Candidates(prev.poses, prev.boxes, prev.scores, np.array([False, True]))
    assert len(recover_poses(det, prev_rec, propagated, np.zeros((240, 320, 3), np.uint8), TemplatePose(), cfg)) == 1
    cfg2 = cfg.replace(recovery_from_recovered=True)
    assert len(recover_poses(det, prev_rec, propagated, np.zeros((240, 320, 3), np.uint8), TemplatePose(), cfg2)) == 2


def test_recovery_checks_agreement_and_mean_score():
    """recovery_min_agreement: a re-estimated pose must sit on the propagated joints of its source (only the
    joints the source detected count); recovery_min_mean_score: its joints must score well on average."""
    prop = make_pose(100, 100, 0.02)[None]                  # low map values do not matter, positions do
    src = np.ones((1, 17), bool)
    on_it, elsewhere = make_pose(100, 101, 0.8)[None], make_pose(160, 100, 0.8)[None]
    cfg = TrackingConfig(recovery_min_agreement=0.7)
    assert recovery_checks(on_it, prop, src, cfg).tolist() == [True]
    assert recovery_checks(elsewhere, prop, src, cfg).tolist() == [False]
    assert recovery_checks(elsewhere, prop, src, TrackingConfig()).tolist() == [True]    # off by default
    half = make_pose(100, 101, 0.8)
    half[:8, :2] += 60                                       # the joints the source did not detect are off
    only_lower = np.zeros((1, 17), bool)
    only_lower[0, 8:] = True
    assert recovery_checks(half[None], prop, only_lower, cfg).tolist() == [True]
    assert recovery_checks(half[None], prop, src, cfg).tolist() == [False]
    weak = make_pose(100, 101, 0.6)
    weak[3:5] = 0.0                                          # unused slots (score 0) are not averaged
    ms = TrackingConfig(recovery_min_mean_score=0.65)
    assert recovery_checks(weak[None], prop, src, ms).tolist() == [False]
    assert recovery_checks(weak[None], prop, src, ms.replace(recovery_min_mean_score=0.55)).tolist() == [True]
    # through recover_poses: the template estimator centres its pose in the propagated box, so it agrees;
    # its 0.6 scores fail a 0.65 mean
    prev = Candidates(make_pose(230, 120)[None], [[190.0, 32.5, 80.0, 170.0]], np.ones(1), np.zeros(1, bool))
    det = Candidates()
    propagated = make_pose(235, 120, 0.8)[None]
    img = np.zeros((240, 320, 3), np.uint8)
    shipped = TrackingConfig.preset("shipped")          # shifted boxes: the source's box moved by 5 px
    assert len(recover_poses(det, prev, propagated, img, TemplatePose(0.9), shipped)) == 1
    assert len(recover_poses(det, prev, propagated, img, TemplatePose(0.6), shipped)) == 0
    # a detected pose 10 px off the re-estimated one (OKS 0.49 with it): the release's recovery_max_oks 0.6
    # keeps the recovery as a second person, the shipped preset's 0.3 drops it as a duplicate
    near = Candidates(make_pose(245, 120)[None], [[205.0, 32.5, 80.0, 170.0]], np.ones(1), np.zeros(1, bool))
    assert shipped.recovery_max_oks == 0.3
    assert recover_poses(near, prev, propagated, img, TemplatePose(0.9), shipped).recovered.tolist() == [False]
    kept = recover_poses(near, prev, propagated, img, TemplatePose(0.9), shipped.replace(recovery_max_oks=0.6))
    assert kept.recovered.tolist() == [False, True]


def test_precompute_recovers_with_zero_motion_correspondences(tmp_path):
    """End to end through precompute_video: GT boxes miss person 1 in frame 2 (no GT box there because
    its bbox is degenerate); the zero-motion correspondence net propagates it from frame 1 and the pose
    estimator re-estimates it."""
    pos1 = {f: (80, 120) for f in range(3)}
    pos2 = {f: (230, 120) for f in range(3)}
    video = make_video({1: pos1, 2: pos2}, 3, root=tmp_path)
    p = video.gt.frames[2].persons[0]
    p.bbox = np.array([0.0, 0.0, 0.0, 0.0])
    p.present[:] = False                                        # no joints either: no GT box for it
    assert len(gt_boxes(video.gt.frames[2])[0]) == 1
    corr = CorrespondenceModel(PositionCodeNet(), None, input_size=128)
    cache = precompute_video(video, TrackingConfig(boxes="gt", input_size=128), Models(pose=TemplatePose(), corr=corr),
                             cues=["corr"])
    assert [len(cache.candidates[f]) for f in range(3)] == [2, 2, 2]
    assert cache.candidates[2].recovered.tolist() == [False, True]
    res = track(cache, TrackingConfig(cue="corr", joint_threshold=0.0))
    assert len(res.tracks) == 2                                 # the recovered pose continues person 1's track
    assert cache.pairs[(1, 2)].corr.shape == (2, 2, 17)
    cache_off = precompute_video(video, TrackingConfig(boxes="gt", input_size=128, recovery=False),
                                 Models(pose=TemplatePose(), corr=corr), cues=["corr"])
    assert len(cache_off.candidates[2]) == 1


# --------------------------------------------------------------------------------------- the output

def test_joint_threshold_and_min_track_length():
    pose = make_pose(100, 100)
    pose[:5, 2] = 0.2
    out = thresholded_pose(pose, 0.3)
    assert (out[:5] == 0).all() and (out[5:][USED[5:]] != 0).all()
    assert thresholded_pose(make_pose(0, 0, 0.1), 0.3) is None
    pos1 = {f: (80, 120) for f in range(4)}
    pos2 = {f: (230, 120) for f in (0, 1)}
    video = make_video({1: pos1, 2: pos2}, 4)
    poses = {f: np.stack([make_pose(*p[f], score=0.9 if p is pos1 else 0.5) for p in (pos1, pos2) if f in p])
             for f in range(4)}
    cache = hand_cache(video, poses)
    seq = track(cache, TrackingConfig(cue="oks", joint_threshold=0.3, min_track_length=3)).to_sequence()
    assert [len(f.persons) for f in seq.frames] == [1, 1, 1, 1]          # person 2's 2-frame track dropped
    seq = track(cache, TrackingConfig(cue="oks", joint_threshold=0.6, min_track_length=1)).to_sequence()
    assert [len(f.persons) for f in seq.frames] == [1, 1, 1, 1]          # person 2's joints all below 0.6
    seq = track(cache, TrackingConfig(cue="oks", joint_threshold=0.3, min_track_length=1)).to_sequence()
    assert [len(f.persons) for f in seq.frames] == [2, 2, 1, 1]
    assert {p.track_id for f in seq.frames for p in f.persons} == {1, 2}


def test_prediction_file_has_the_fields_poseval_reads(tmp_path):
    pos1 = {f: (80 + 2 * f, 120) for f in range(5)}
    video = make_video({7: pos1}, 6)                            # frame 5 unlabelled: still in the file
    cache = hand_cache(video, {f: make_pose(*pos1[f])[None] for f in range(5)})
    seq = track(cache, TrackingConfig(cue="oks")).to_sequence()
    path = write_prediction(seq, tmp_path)
    assert path.name == "000001_mpii_test.json"
    d = json.loads(path.read_text())
    assert len(d["images"]) == 6
    for im, g in zip(d["images"], video.gt.frames):
        assert im["file_name"] == g.file_name and im["id"] == g.image_id
        assert {"vid_id", "frame_id", "nframes", "is_labeled", "ignore_regions_x", "ignore_regions_y"} <= set(im)
    ids = {im["id"] for im in d["images"]}
    assert len(d["annotations"]) == 5
    for a in d["annotations"]:
        assert a["image_id"] in ids and a["category_id"] == 1
        assert len(a["keypoints"]) == 51 and len(a["scores"]) == 17
        assert isinstance(a["track_id"], int) and 0 < a["track_id"] < 10000
    cat = d["categories"][0]
    assert cat["name"] == "person" and len(cat["keypoints"]) == 17 and cat["keypoints"][1] == "head_bottom"
    # and our evaluator takes it as it is: a perfect track of the GT poses
    m = evaluate({video.name: video.gt}, {video.name: seq})
    assert m.total("ap") == pytest.approx(100.0) and m.total("mota") == pytest.approx(100.0)


def test_gt_poses_and_oks_track_a_world_without_occlusion_near_perfectly():
    """Three people walking in separate lanes, 30 frames: with GT poses as candidates the oks cue must
    give (almost) perfect tracks."""
    rng = np.random.default_rng(0)
    lanes = {1: (40, 60, 3.0), 2: (150, 130, -2.0), 3: (60, 200, 1.5)}
    tracks = {t: {f: (x0 + v * f + rng.normal(0, 0.5), y) for f in range(30)} for t, (x0, y, v) in lanes.items()}
    video = make_video(tracks, 30)
    cache = precompute_video(video, TrackingConfig(boxes="gt-poses", cue="oks"), Models(), cues=["oks"])
    seq = track(cache, TrackingConfig(cue="oks")).to_sequence()
    table = evaluate_cues([video], {"oks": {video.name: seq}})
    assert table["oks"]["mota"] > 99.0 and table["oks"]["idsw"] == 0 and table["oks"]["map"] > 99.0


# ---------------------------------------------------------------------------------------- inputs

def test_gt_box_falls_back_to_the_joints_extent():
    video = make_video({1: {0: (100, 100)}}, 1)
    p = video.gt.frames[0].persons[0]
    np.testing.assert_allclose(person_box(p), p.bbox)
    p.bbox = None
    np.testing.assert_allclose(person_box(p), [84, 50, 32, 95])


def test_detection_file_of_a_video(tmp_path):
    """One file for all videos, a folder of <video>.json, or the synthetic world's default layout."""
    from corrtrack.tracking import TrackingInputError, video_detections

    dets = [{"image_id": 5, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9},
            {"image_id": 5, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.2}]
    one = tmp_path / "all.json"
    one.write_text(json.dumps(dets))
    assert video_detections("v1", one, tmp_path, "val", 0.5)[5].tolist() == [[1, 2, 30, 40, 0.9]]
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "v1.json").write_text(json.dumps(dets))
    assert len(video_detections("v1", tmp_path / "folder", tmp_path, "val")[5]) == 2
    (tmp_path / "detections" / "val").mkdir(parents=True)
    (tmp_path / "detections" / "val" / "v1.json").write_text(json.dumps(dets[:1]))
    assert len(video_detections("v1", None, tmp_path, "val")[5]) == 1
    with pytest.raises(TrackingInputError, match="v2.json: detection file missing for video v2"):
        video_detections("v2", None, tmp_path, "val")


# ------------------------------------------------------------------------------------------ config

def test_config_yaml_mirrors_the_dataclass_defaults():
    import yaml

    data = yaml.safe_load((REPO / "experiments" / "configs" / "tracking.yaml").read_text())
    assert data == TrackingConfig.defaults()


def test_config_overrides_and_errors():
    cfg = TrackingConfig.from_overrides(["tau_corr=0.2", "recovery=false", "merge_gap=4", "duplicate_ratio=null",
                                         "solver=hungarian"])
    assert (cfg.tau_corr, cfg.recovery, cfg.merge_gap, cfg.duplicate_ratio, cfg.solver) == (0.2, False, 4, None,
                                                                                            "hungarian")
    with pytest.raises(TrackingConfigError, match="unknown key 'tau_cor'.*tau_corr"):
        TrackingConfig.from_overrides(["tau_cor=0.2"])
    with pytest.raises(TrackingConfigError, match="recovery='maybe'"):
        TrackingConfig.from_overrides(["recovery=maybe"])
    with pytest.raises(TrackingConfigError, match="cue"):
        TrackingConfig(cue="pwc")
    with pytest.raises(TrackingConfigError, match="joint_threshold"):
        TrackingConfig.from_overrides(["joint_threshold=1.5"])
    rel = TrackingConfig.preset("release")
    assert (rel.corr_variant, rel.tau_corr, rel.min_track_length, rel.duplicate_ratio) == ("release", 0.3, 3, 0.6)
    # only the precomputation's settings change its key
    assert cfg.precompute_key() == TrackingConfig(recovery=False).precompute_key()
    assert TrackingConfig(tau_corr=0.9, cue="oks").precompute_key() == TrackingConfig().precompute_key()


def test_precomputation_pickles_for_a_disk_cache():
    """A VideoCache survives pickling (a sweep can keep it on disk) and tracks to the same result."""
    import pickle

    cache = _two_person_cache(parts=("corr",))
    pd = cache.pairs[(0, 1)] = PairData(0, 1)
    pd.corr = np.zeros((2, 2, 17), np.float32)
    pd.corr[0, 1], pd.corr[1, 0] = 0.8, 0.6
    cache.seconds["pose"] += 1.0
    again = pickle.loads(pickle.dumps(cache))
    cfg = TrackingConfig(joint_threshold=0.0)
    assert [a.tolist() for a in track(again, cfg).ids.values()] == [a.tolist() for a in track(cache, cfg).ids.values()]
    assert again.seconds["pose"] == 1.0 and again.video.name == cache.video.name
