"""PoseTrack evaluation on small cases worked out by hand: AP, MOTA (quirks on and off), HOTA, formats."""
from __future__ import annotations

import json

import numpy as np
import pytest

from corrtrack.evaluation import evaluate, format_tables
from corrtrack.evaluation.ap import voc_ap
from corrtrack.keypoints import EVAL_NAMES, EVAL_TO_POSETRACK, NUM_JOINTS
from corrtrack.posetrack import Frame, Person, Sequence, load_folder, save_2017, save_2018

HEAD = np.array([0.0, 0.0, 10.0, 10.0])      # head size 0.6 * sqrt(200) = 8.49 px -> match within 4.24 px


def person(track_id, joints: dict[str, tuple], scores: dict[str, float] | None = None, head=HEAD) -> Person:
    """A person with the named evaluation joints at (x, y); other joints absent."""
    kp = np.zeros((NUM_JOINTS, 3))
    sc = None if scores is None else np.zeros(NUM_JOINTS)
    for name, (x, y) in joints.items():
        s = EVAL_TO_POSETRACK[EVAL_NAMES.index(name)]
        kp[s] = (x, y, 1)
        if scores is not None:
            sc[s] = scores.get(name, 0.5)
    return Person(kp, track_id=track_id, scores=sc, head_box=None if head is None else head.copy())


def seq(name: str, frames: list[list[Person]], regions: dict[int, list] | None = None) -> Sequence:
    regions = regions or {}
    return Sequence(name=name, frames=[
        Frame(file_name=f"images/val/{name}/{i:06d}.jpg", image_id=i, persons=ps,
              ignore_regions=[np.asarray(r, dtype=float) for r in regions.get(i, [])])
        for i, ps in enumerate(frames)])


# ------------------------------------------------------------------------------------------------ AP

def test_voc_ap_by_hand():
    # TP ranked first: precision [1, 1/2], recall [1, 1] -> AP 1
    assert voc_ap(np.array([0.9, 0.8]), np.array([True, False]), 1)[0] == pytest.approx(100)
    # FP ranked first: precision [0, 1/2], recall [0, 1] -> envelope 1/2 over recall 0..1 -> AP 0.5
    assert voc_ap(np.array([0.8, 0.9]), np.array([True, False]), 1)[0] == pytest.approx(50)
    # two GT, TP FP TP: recall .5 at p=1, recall 1 at p=2/3 -> 0.5 + 0.5 * 2/3
    ap = voc_ap(np.array([3.0, 2.0, 1.0]), np.array([True, False, True]), 2)[0]
    assert ap == pytest.approx(100 * (0.5 + 1 / 3))
    assert voc_ap(np.zeros(0), np.zeros(0, bool), 3)[0] == 0.0


def _ap_case(preds):
    gt = {"s": seq("000001_mpii_test", [[person(1, {"head_top": (100, 100)})]])}
    pr = {"s": seq("000001_mpii_test", [preds])}
    return evaluate(gt, pr)


def test_ap_ranking_by_score():
    near, far = (101, 100), (150, 150)
    m = _ap_case([person(1, {"head_top": near}, {"head_top": 0.9}),
                  person(2, {"head_top": far}, {"head_top": 0.8})])
    assert m.ap[EVAL_NAMES.index("head_top")] == pytest.approx(100)
    m = _ap_case([person(1, {"head_top": near}, {"head_top": 0.8}),
                  person(2, {"head_top": far}, {"head_top": 0.9})])
    assert m.ap[EVAL_NAMES.index("head_top")] == pytest.approx(50)
    # joints without predictions have AP 0; the total is the mean over all 15 joints
    assert m.to_dict()["ap"]["nose"] == 0.0 and m.to_dict()["ap"]["total"] == pytest.approx(50 / 15)


def test_ap_assignment_tie_goes_to_lower_index_not_higher_score():
    # Both predictions have PCKh 1 for the one GT: poseval keeps the first (argmax), whatever the scores.
    a = person(1, {"head_top": (101, 100)}, {"head_top": 0.5})
    c = person(2, {"head_top": (100, 101)}, {"head_top": 0.9})
    j = EVAL_NAMES.index("head_top")
    assert _ap_case([a, c]).ap[j] == pytest.approx(50)      # c (FP, 0.9) ranked above a (TP, 0.5)
    assert _ap_case([c, a]).ap[j] == pytest.approx(100)     # c assigned now


def test_equal_scores_rank_as_poseval():
    # equal scores: poseval's argsort()[::-1] ranks the later prediction first
    a = person(1, {"head_top": (101, 100)}, {"head_top": 0.5})
    b = person(2, {"head_top": (150, 150)}, {"head_top": 0.5})
    j = EVAL_NAMES.index("head_top")
    assert _ap_case([a, b]).ap[j] == pytest.approx(50)
    assert _ap_case([b, a]).ap[j] == pytest.approx(100)


def test_ap_person_assignment_uses_pckh():
    # GT person with two joints; prediction 1 matches one joint, prediction 2 both: 2 is assigned,
    # so 1's matching joint counts as a false positive.
    gt = {"s": seq("000001_mpii_test", [[person(1, {"nose": (100, 100), "neck": (100, 120)})]])}
    p1 = person(1, {"nose": (100, 100), "neck": (300, 300)}, {"nose": 0.9, "neck": 0.9})
    p2 = person(2, {"nose": (101, 100), "neck": (100, 121)}, {"nose": 0.1, "neck": 0.1})
    m = evaluate(gt, {"s": seq("000001_mpii_test", [[p1, p2]])})
    assert m.ap[EVAL_NAMES.index("nose")] == pytest.approx(50)
    assert m.ap[EVAL_NAMES.index("neck")] == pytest.approx(50)


# ------------------------------------------------------------------------------------------------ MOTA

def _mot_case():
    """Nose only. Two GT tracks (1, 2); predictions a, b, c; see the test for the hand count."""
    g1, g2 = (100, 100), (200, 100)

    def G():
        return [person(1, {"nose": g1}), person(2, {"nose": g2})]

    def P(tid, xy):
        return person(tid, {"nose": xy}, {"nose": 0.7})

    gt_frames = [G(), G(), G(), G(), G(), G() + [person(3, {"nose": (400, 400)})]]
    pr_frames = [
        [P(10, g1), P(11, g2)],                 # f0: 1-a, 2-b
        [P(10, g2), P(11, g1)],                 # f1: swapped ids: 2 switches
        [P(11, g1)],                            # f2: 1-b kept, GT 2 missed
        [],                                     # f3: no predictions
        [P(10, g2), P(11, g1), P(12, (400, 400))],   # f4: matches kept, c is a false positive
        [P(10, g2), P(11, g1), P(12, (400, 400))],   # f5: GT 3 and c are inside an ignore region
    ]
    region = {5: [[(350, 350), (450, 350), (450, 450), (350, 450)]]}
    return ({"v": seq("000002_mpii_test", gt_frames, region)}, {"v": seq("000002_mpii_test", pr_frames)})


@pytest.mark.parametrize("engine", ["fast", "motmetrics"])
def test_mota_strict_by_hand(engine):
    gt, pr = _mot_case()
    m = evaluate(gt, pr, strict=True, engine=engine)
    j = EVAL_NAMES.index("nose")
    c = m.counts
    # objects 2 per frame x 6 (GT 3 removed), switches 2 (f1), misses 1 (f2) + 2 (f3), false positives 1 (f4)
    assert (c.objects[j], c.switches[j], c.misses[j], c.false_positives[j]) == (12, 2, 3, 1)
    assert m.mota[j] == pytest.approx(100 * (1 - 6 / 12))
    assert m.precision[j] == pytest.approx(100 * 9 / 10) and m.recall[j] == pytest.approx(100 * 9 / 12)
    assert m.motp[j] == pytest.approx(100)
    d = m.to_dict()
    assert d["mota"]["nose"] == pytest.approx(50) and d["mota"]["total"] == pytest.approx(50)
    assert d["mota"]["neck"] is None                       # no GT neck anywhere: NaN, skipped by the total
    assert (d["num_switches"], d["num_misses"], d["num_false_positives"], d["num_objects"]) == (2, 3, 1, 12)


@pytest.mark.parametrize("engine", ["fast", "motmetrics"])
def test_mota_official_quirks_by_hand(engine):
    gt, pr = _mot_case()
    m = evaluate(gt, pr, strict=False, engine=engine)
    j = EVAL_NAMES.index("nose")
    c = m.counts
    # last frame (f5) left out; f3 (no predictions) is one dummy object + one dummy hypothesis:
    # objects 2+2+2+1+2, misses f2 1 + f3 1, false positives f3 1 + f4 1, switches 2
    assert (c.objects[j], c.switches[j], c.misses[j], c.false_positives[j]) == (9, 2, 2, 2)
    assert m.mota[j] == pytest.approx(100 * (1 - 6 / 9))
    assert m.precision[j] == pytest.approx(100 * 7 / 9) and m.recall[j] == pytest.approx(100 * 7 / 9)
    # joints without any GT still get one dummy miss + false positive per quirk frame (f3): MOTA -100
    assert m.mota[EVAL_NAMES.index("neck")] == pytest.approx(-100)


def test_quirk_frame_whose_gt_vanishes_in_ignore_region():
    # f1's only GT joint is inside an ignore region: the frame stays, with no GT -> dummy entries (quirk),
    # and its predictions are AP false positives.
    gt = {"v": seq("000003_mpii_test", [[person(1, {"nose": (10, 10)})], [person(1, {"nose": (50, 50)})],
                                         [person(1, {"nose": (10, 10)})], [person(1, {"nose": (10, 10)})]],
                   {1: [[(40, 40), (60, 40), (60, 60), (40, 60)]]})}
    p = [[person(5, {"nose": (10, 10)}, {"nose": 0.9})], [person(5, {"nose": (10, 10)}, {"nose": 0.1})],
         [person(5, {"nose": (10, 10)}, {"nose": 0.9})], [person(5, {"nose": (10, 10)}, {"nose": 0.9})]]
    pr = {"v": seq("000003_mpii_test", p)}
    j = EVAL_NAMES.index("nose")
    off = evaluate(gt, pr)
    assert (off.counts.objects[j], off.counts.misses[j], off.counts.false_positives[j]) == (3, 1, 1)
    strict = evaluate(gt, pr, strict=True)
    assert (strict.counts.objects[j], strict.counts.misses[j], strict.counts.false_positives[j]) == (3, 0, 1)
    # AP: 3 TP at 0.9, 1 FP at 0.1 (frame 1), 3 GT joints -> AP 100
    assert off.ap[j] == pytest.approx(100)


def test_unlabeled_frames_are_dropped_with_their_predictions():
    gt = {"v": seq("000004_mpii_test", [[person(1, {"nose": (10, 10)})], [],
                                         [person(1, {"nose": (10, 10)})]])}
    fp = person(9, {"nose": (300, 300)}, {"nose": 0.99})
    pr = {"v": seq("000004_mpii_test", [[person(5, {"nose": (10, 10)}, {"nose": 0.5})], [fp],
                                         [person(5, {"nose": (10, 10)}, {"nose": 0.5})]])}
    m = evaluate(gt, pr, strict=True)
    j = EVAL_NAMES.index("nose")
    assert m.ap[j] == pytest.approx(100) and m.mota[j] == pytest.approx(100)


def test_2018_all_zero_gt_person_follows_poseval():
    # A GT person with no joints keeps its frame on the normal path (not the dummy path) ...
    empty = Person(np.zeros((NUM_JOINTS, 3)), track_id=7, head_box=HEAD.copy())
    frames = [[person(1, {"nose": (10, 10)})], [empty], [person(1, {"nose": (10, 10)})]]
    pr_frames = [[person(5, {"nose": (10, 10)}, {"nose": 0.5})] for _ in range(3)]
    j = EVAL_NAMES.index("nose")
    m = evaluate({"v": seq("000005_mpii_test", frames)}, {"v": seq("000005_mpii_test", pr_frames)})
    assert (m.counts.objects[j], m.counts.misses[j], m.counts.false_positives[j]) == (1, 0, 1)
    assert m.counts.objects[EVAL_NAMES.index("neck")] == 0          # real counts in that frame: none
    # ... but is removed in a frame with ignore regions (then the frame gets the dummy entries)
    m = evaluate({"v": seq("000005_mpii_test", frames, {1: [[(500, 500), (501, 500), (501, 501)]]})},
                 {"v": seq("000005_mpii_test", pr_frames)})
    assert (m.counts.objects[j], m.counts.misses[j], m.counts.false_positives[j]) == (2, 1, 1)


# ------------------------------------------------------------------------------------------------ formats

@pytest.mark.parametrize("fmt_gt, fmt_pred",
                         [("2018", "2018"), ("2017", "2017"), ("2017", "2018"), ("2018", "2017")])
def test_both_formats_give_the_same_numbers(tmp_path, fmt_gt, fmt_pred):
    gt, pr = _mot_case()
    ref = evaluate(gt, pr).to_dict()
    save = {"2017": save_2017, "2018": save_2018}
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    save[fmt_gt](gt["v"], tmp_path / "gt" / "000002_mpii_test.json")
    save[fmt_pred](pr["v"], tmp_path / "pred" / "000002_mpii_test.json")
    got = evaluate(load_folder(tmp_path / "gt"), load_folder(tmp_path / "pred")).to_dict()
    assert json.dumps(got, sort_keys=True) == json.dumps(ref, sort_keys=True)


def test_json_shape_and_tables():
    gt, pr = _mot_case()
    m = evaluate(gt, pr, hota=True)
    d = m.to_dict()
    names = list(EVAL_NAMES) + ["total"]
    for k in ("ap", "mota", "motp", "precision", "recall", "hota", "deta", "assa", "loca"):
        assert list(d[k]) == names
    assert "neck" in d["ap"] and "head_bottom" not in d["ap"]
    for k in ("num_switches", "num_misses", "num_false_positives", "num_objects"):
        assert isinstance(d[k], int)
    json.dumps(d, allow_nan=False)                 # NaN are written as null
    assert set(evaluate(gt, pr).to_dict()) == {"ap", "mota", "motp", "precision", "recall", "num_switches",
                                               "num_misses", "num_false_positives", "num_objects"}
    t = format_tables(m)
    for w in ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total", "MOTA", "HOTA", "AssA"):
        assert w in t


# ------------------------------------------------------------------------------------------------ HOTA

def test_hota_perfect_and_swap_by_hand():
    j = EVAL_NAMES.index("nose")
    gt = {"v": seq("000006_mpii_test", [[person(1, {"nose": (10, 10)})] for _ in range(4)])}
    perfect = {"v": seq("000006_mpii_test", [[person(5, {"nose": (10, 10)}, {"nose": 1})] for _ in range(4)])}
    h = evaluate(gt, perfect, hota=True).hota
    assert (h["hota"][j], h["deta"][j], h["assa"][j], h["loca"][j]) == pytest.approx((100, 100, 100, 100))
    # the predicted id changes halfway: two (GT, pred) pairs with TPA 2, A = 2 / (4 + 2 - 2) each
    swap = {"v": seq("000006_mpii_test", [[person(5 if f < 2 else 6, {"nose": (10, 10)}, {"nose": 1})]
                                          for f in range(4)])}
    h = evaluate(gt, swap, hota=True).hota
    assert h["deta"][j] == pytest.approx(100) and h["assa"][j] == pytest.approx(50)
    assert h["hota"][j] == pytest.approx(100 * np.sqrt(0.5))


@pytest.mark.parametrize("strict, slope", [(True, 0.5), (False, 0.5001)])    # the kit's slope by default
def test_hota_localisation(strict, slope):
    # d = 2 px / 8.485 px = 0.2357 -> similarity 1 - d / 0.5 = 0.5286: TP for alpha <= 0.50 (10 of 19)
    j = EVAL_NAMES.index("nose")
    gt = {"v": seq("000007_mpii_test", [[person(1, {"nose": (10, 10)})] for _ in range(3)])}
    pr = {"v": seq("000007_mpii_test", [[person(5, {"nose": (12, 10)}, {"nose": 1})] for _ in range(3)])}
    h = evaluate(gt, pr, strict=strict, hota=True).hota
    s = 1 - (2 / (0.6 * np.sqrt(200))) / slope
    alphas = np.arange(0.05, 0.99, 0.05)
    tp = alphas <= s
    assert h["deta"][j] == pytest.approx(100 * tp.mean())
    assert h["hota"][j] == pytest.approx(100 * tp.mean())           # AssA is 1 where TP > 0
    assert h["loca"][j] == pytest.approx(100 * (tp * s + ~tp * 1.0).mean())   # TrackEval: LocA 1 when TP = 0


def test_in_memory_without_predictions_counts_everything_missed():
    gt, _ = _mot_case()
    m = evaluate(gt, {}, strict=True)
    j = EVAL_NAMES.index("nose")
    assert m.counts.misses[j] == m.counts.objects[j] == 12 and m.recall[j] == 0
    assert any("has no prediction file" in w for w in m.warnings)


def test_synthetic_world_gt_loads_and_evaluates_perfectly(tiny_world):
    from corrtrack.evaluation import evaluate_folders

    folder = tiny_world / "posetrack" / "annotations" / "val"
    m = evaluate_folders(folder, folder, hota=True)
    assert m.num_sequences > 0 and m.num_frames > 0
    assert m.total("ap") == pytest.approx(100) and m.total("mota") == pytest.approx(100)
    assert m.total("hota") == pytest.approx(100)
