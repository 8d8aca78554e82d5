"""Keypoint HOTA: the PoseTrack21 kit's five rules and two crash cases by default, the corrected metric under
strict, on hand-built sequences worked out in docs/evaluation.md ("Keypoint HOTA"); PoseTrack21 files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from corrtrack.evaluate import main
from corrtrack.evaluation import evaluate, evaluate_folders
from corrtrack.evaluation.hota_kit import KIT_SLOPE
from corrtrack.keypoints import EVAL_NAMES, EVAL_TO_POSETRACK, NUM_JOINTS
from corrtrack.posetrack import (Frame, Person, PoseTrackFormatError, Sequence, load_sequence, save_2017, save_2018,
                                 to_2018_dict)

HEAD = np.array([0.0, 0.0, 10.0, 10.0])        # head size 0.6 * sqrt(200) = 8.485 px
HS = 0.6 * np.sqrt(200.0)
ALPHAS = np.arange(0.05, 0.99, 0.05)
NOSE, NECK = EVAL_NAMES.index("nose"), EVAL_NAMES.index("neck")
NAME = "000020_mpii_test"


def person(tid: int | None, joints: dict[str, tuple], head=HEAD) -> Person:
    kp = np.zeros((NUM_JOINTS, 3))
    for name, (x, y) in joints.items():
        kp[EVAL_TO_POSETRACK[EVAL_NAMES.index(name)]] = (x, y, 1)
    present = np.zeros(NUM_JOINTS, dtype=bool)
    present[[EVAL_TO_POSETRACK[EVAL_NAMES.index(n)] for n in joints]] = True
    return Person(kp, track_id=tid, scores=np.where(present, 0.9, 0.0), present=present,
                  head_box=None if head is None else head.copy())


def seq(frames: list[list[Person]], labeled: list[bool] | None = None,
        regions: dict[int, list] | None = None, name: str = NAME) -> Sequence:
    regions = regions or {}
    return Sequence(name=name, frames=[
        Frame(file_name=f"images/val/{name}/{i:06d}.jpg", image_id=10000000000 + i, persons=ps,
              is_labeled=None if labeled is None else labeled[i],
              ignore_regions=[np.asarray(r, dtype=float) for r in regions.get(i, [])])
        for i, ps in enumerate(frames)])


def nose(tid, x=10.0, y=10.0):
    return person(tid, {"nose": (x, y)})


def both(gt: Sequence, pred: Sequence, j: int = NOSE) -> tuple[dict, dict]:
    """(default, strict) HOTA, DetA, AssA, LocA of joint j, as fractions."""
    out = []
    for strict in (False, True):
        h = evaluate({NAME: gt}, {NAME: pred}, strict=strict, hota=True).hota
        out.append({k: h[k][j] / 100 for k in ("hota", "deta", "assa", "loca")})
    return out[0], out[1]


# ------------------------------------------------------------------------------------------ the five rules

def test_rule1_frame_without_predictions_misses_the_whole_sequence():
    # GT nose in 4 labeled frames, tracked perfectly in frames 0-2, no prediction in frame 3.
    gt = seq([[nose(1)] for _ in range(4)])
    pred = seq([[nose(7)] for _ in range(3)] + [[]])
    kit, strict = both(gt, pred)
    # kit: TP 3, FN = 4 (all GT nose joints of the sequence, not frame 3's one); A = 3 / (4 + 3 - 3)
    assert kit["deta"] == pytest.approx(3 / 7) and kit["assa"] == pytest.approx(3 / 4)
    assert kit["hota"] == pytest.approx(np.sqrt(9 / 28)) and kit["loca"] == pytest.approx(1)
    # strict: FN 1 -> DetA 3/4, AssA 3/4
    assert strict["deta"] == pytest.approx(3 / 4) and strict["hota"] == pytest.approx(3 / 4)


def test_rule2_frames_scored_are_the_labeled_ones():
    # frame 3 has a GT person but is not flagged is_labeled; the prediction there is far off (miss + FP)
    gt = seq([[nose(1)] for _ in range(4)], labeled=[True, True, True, False])
    pred = seq([[nose(7)] for _ in range(3)] + [[nose(7, 60, 60)]])
    kit, strict = both(gt, pred)
    assert kit["hota"] == kit["deta"] == kit["assa"] == pytest.approx(1)       # frame 3 not scored
    # strict scores frame 3 (it has GT): TP 3, FN 1, FP 1; the tracks have 4 joints each -> A = 3 / 5
    assert strict["deta"] == pytest.approx(3 / 5) and strict["assa"] == pytest.approx(3 / 5)
    assert strict["hota"] == pytest.approx(3 / 5)


def test_rule3_a_joint_is_present_when_x_and_y_are_positive():
    # GT nose on the top image row (y = 0), predicted 0.5 px below: d = 0.5 / 8.485 = 0.0589
    gt = seq([[person(1, {"nose": (4, 0), "neck": (4, 20)})] for _ in range(2)])
    pred = seq([[person(7, {"nose": (4, 0.5), "neck": (4, 20)})] for _ in range(2)])
    kit, strict = both(gt, pred)
    # kit: the GT nose is absent, the predicted one (y = 0.5 > 0) is a false positive in both frames
    assert kit["deta"] == 0 and kit["hota"] == 0 and kit["loca"] == pytest.approx(1)
    s = 1 - 0.5 / HS / 0.5                                     # 0.882: TP for alpha <= 0.85 (17 of 19)
    tp = ALPHAS <= s
    assert tp.sum() == 17
    assert strict["deta"] == pytest.approx(17 / 19) and strict["hota"] == pytest.approx(17 / 19)
    assert strict["loca"] == pytest.approx((17 * s + 2) / 19)


def test_rule4_similarity_slope():
    # d = 0.0250025 head sizes: 1 - d / 0.5 = 0.949995 < 0.95 <= 1 - d / 0.5001 = 0.950005
    d = 0.0250025
    gt = seq([[nose(1)] for _ in range(2)])
    pred = seq([[nose(7, 10 + d * HS, 10)] for _ in range(2)])
    kit, strict = both(gt, pred)
    s_kit, s_strict = 1 + KIT_SLOPE * d, 1 - d / 0.5
    assert s_strict < ALPHAS[-1] <= s_kit
    assert kit["deta"] == pytest.approx(1) and kit["hota"] == pytest.approx(1)      # TP at all 19 alphas
    assert kit["loca"] == pytest.approx(s_kit)
    assert strict["deta"] == pytest.approx(18 / 19) and strict["hota"] == pytest.approx(18 / 19)
    assert strict["loca"] == pytest.approx((18 * s_strict + 1) / 19)


def test_rule5_total_pools_detection_and_weights_association():
    # nose and neck annotated in 4 frames; nose tracked perfectly, neck never predicted
    gt = seq([[person(1, {"nose": (10, 10), "neck": (10, 30)})] for _ in range(4)])
    pred = seq([[nose(7)] for _ in range(4)])
    m = evaluate({NAME: gt}, {NAME: pred}, hota=True)
    assert m.hota["hota"][NOSE] == pytest.approx(100) and m.hota["hota"][NECK] == 0
    others = [j for j in range(15) if j not in (NOSE, NECK)]
    assert np.all(m.hota["hota"][others] == 0) and np.all(m.hota["loca"][others] == 100)   # kit: no data
    # Total: DetA = 4 / (4 + 4) pooled over joints; AssA = mean over the 15 joints (1, 0, ..., 0), weighted
    # by the sequence's TP; HOTA = sqrt(DetA x AssA); LocA = mean over joints (1 where TP = 0)
    assert m.total("deta") == pytest.approx(50) and m.total("assa") == pytest.approx(100 / 15)
    assert m.total("hota") == pytest.approx(100 * np.sqrt(0.5 / 15)) and m.total("loca") == pytest.approx(100)
    assert m.to_dict()["hota"]["total"] == pytest.approx(100 * np.sqrt(0.5 / 15))
    s = evaluate({NAME: gt}, {NAME: pred}, strict=True, hota=True)
    assert np.isnan(s.hota["hota"][others]).all()               # strict: joints without data are skipped
    assert s.total("hota") == pytest.approx(50) and s.total("deta") == pytest.approx(50)


def test_total_weights_each_sequence_by_its_tp():
    # sequence A: nose perfect in 4 frames (AssA 1); sequence B: nose in 2 frames, the predicted id changes
    # (two pairs with TPA 1: A = 1 / (2 + 1 - 1) = 1/2 each -> AssA 1/2)
    a = seq([[nose(1)] for _ in range(4)], name="000021_mpii_test")
    pa = seq([[nose(7)] for _ in range(4)], name="000021_mpii_test")
    b = seq([[nose(1)] for _ in range(2)], name="000022_mpii_test")
    pb = seq([[nose(7)], [nose(8)]], name="000022_mpii_test")
    m = evaluate({"a": a, "b": b}, {"a": pa, "b": pb}, hota=True)
    assert m.hota["assa"][NOSE] == pytest.approx(100 * (4 * 1 + 2 * 0.5) / 6)
    assert m.total("assa") == pytest.approx(100 * (4 * 1 / 15 + 2 * 0.5 / 15) / 6)
    assert m.total("deta") == pytest.approx(100)


# ---------------------------------------------------------------------------------------- the crash cases

def test_crash1_every_gt_person_inside_an_ignore_region():
    # frame 2: the region covers the GT nose and the prediction; the kit raises IndexError there. With an
    # empty GT frame of the right shape it adds the sequence's predicted noses (2, the one in frame 2 is
    # removed by the region) as false positives: TP 2, FP 2.
    region = [[0, 0], [40, 0], [40, 40], [0, 40]]
    gt = seq([[nose(1)] for _ in range(3)], regions={2: [region]})
    pred = seq([[nose(7)] for _ in range(3)])
    kit, strict = both(gt, pred)
    assert kit["deta"] == pytest.approx(1 / 2) and kit["assa"] == pytest.approx(1)
    assert kit["hota"] == pytest.approx(np.sqrt(1 / 2))
    assert strict["hota"] == pytest.approx(1)                  # strict: frame 2 has nothing left to score
    # a second predicted person in frame 2, outside the region, is kept: FP = the sequence's 3 predicted noses
    pred.frames[2].persons.append(nose(9, 100, 100))
    kit, _ = both(gt, pred)
    assert kit["deta"] == pytest.approx(2 / (2 + 3))


def test_crash2_labeled_frame_without_gt_nor_region():
    # frame 2 is flagged labeled but has no GT person and no region (the kit raises TypeError); the
    # tracker keeps predicting the nose there. Kit with empty arrays: FP = all 3 predicted noses.
    gt = seq([[nose(1)], [nose(1)], []], labeled=[True, True, True])
    pred = seq([[nose(7)] for _ in range(3)])
    kit, strict = both(gt, pred)
    # TP 2, FP 3: DetA 2/5; the predicted track has 3 joints: A = 2 / (2 + 3 - 2) = 2/3
    assert kit["deta"] == pytest.approx(2 / 5) and kit["assa"] == pytest.approx(2 / 3)
    assert kit["hota"] == pytest.approx(np.sqrt(4 / 15))
    assert strict["hota"] == pytest.approx(1)                  # strict: a frame without GT is not scored


def test_sequences_without_predictions_or_without_gt_persons():
    gt = seq([[nose(1)] for _ in range(3)])
    m = evaluate({NAME: gt}, {NAME: seq([[], [], []])}, hota=True)   # the kit: FN = all, LocA 1, AssA 0
    assert m.hota["deta"][NOSE] == 0 and m.hota["loca"][NOSE] == 100 and m.total("hota") == 0
    empty = seq([[], [], []], labeled=[True, True, True])
    m = evaluate({NAME: gt, "e": empty}, {NAME: seq([[nose(7)] for _ in range(3)]),
                                         "e": seq([[nose(7)] for _ in range(3)])}, hota=True)
    # the second sequence adds its 3 predicted noses as FP: TP 3, FP 3
    assert m.hota["deta"][NOSE] == pytest.approx(50)


# -------------------------------------------------------------------------------------- CLI and files

def _cli(tmp_path, capsys, *extra):
    out = tmp_path / "m.json"
    code = main(["--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--out", str(out), "--hota",
                 *extra])
    _, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.read_text())


def _write_pt21(seq_: Sequence, path, gt: bool, drop_track_id: bool = False) -> None:
    d = to_2018_dict(seq_)
    for im in d["images"]:
        if gt:
            im["has_labeled_person"] = im["is_labeled"]
        else:                                       # submissions carry file name and ids only
            for k in list(im):
                if k not in ("file_name", "id", "frame_id"):
                    del im[k]
    for a in d["annotations"]:
        a["person_id"] = 1000 + a["track_id"]
        if drop_track_id:
            del a["track_id"]
    path.write_text(json.dumps(d))


def test_cli_and_in_memory_agree_in_any_format_mix(tmp_path, capsys):
    gt = seq([[nose(1), person(2, {"nose": (60, 10), "neck": (60, 30)})] for _ in range(4)]
             + [[nose(1)]], labeled=[True, True, True, False, True])
    pred = seq([[nose(7), person(8, {"nose": (61, 11), "neck": (0, 30)})] for _ in range(3)] + [[], [nose(9)]])
    ref = {strict: evaluate({NAME: gt}, {NAME: pred}, strict=strict, hota=True).to_dict()
           for strict in (False, True)}
    assert ref[False]["hota"]["total"] != pytest.approx(ref[True]["hota"]["total"])
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    writers = {"2017": save_2017, "2018": save_2018,
               "2021": lambda s, p, gt_side: _write_pt21(s, p, gt_side, drop_track_id=not gt_side)}
    for fg in writers:
        for fp in writers:
            for side, s, f in (("gt", gt, fg), ("pred", pred, fp)):
                p = tmp_path / side / f"{NAME}.json"
                if f == "2021":
                    writers[f](s, p, side == "gt")
                else:
                    writers[f](s, p)
            assert load_sequence(tmp_path / "gt" / f"{NAME}.json").format == fg
            for strict in (False, True):
                got = _cli(tmp_path, capsys, *(["--strict"] if strict else []))
                for k in ("hota", "deta", "assa", "loca", "ap", "mota"):
                    assert got[k] == pytest.approx(ref[strict][k], nan_ok=True), (fg, fp, strict, k)


def test_posetrack21_reader(tmp_path):
    gt = seq([[nose(1), nose(2, 60, 60)] for _ in range(2)])
    path = tmp_path / f"{NAME}.json"
    _write_pt21(gt, path, gt=True)
    s = load_sequence(path)
    assert s.format == "2021" and [p.track_id for p in s.frames[0].persons] == [1, 2]   # track_id, not person_id
    _write_pt21(gt, path, gt=True, drop_track_id=True)
    assert [p.track_id for p in load_sequence(path).frames[1].persons] == [1001, 1002]  # person_id stands in
    d = json.loads(path.read_text())
    d["annotations"][3]["person_id"] = "x"
    path.write_text(json.dumps(d))
    with pytest.raises(PoseTrackFormatError, match=r"annotations\[3\]\.person_id.*expected an integer"):
        load_sequence(path)
    d["annotations"][3]["person_id"] = 3
    d["annotations"][2]["keypoints"] = [0] * 50
    path.write_text(json.dumps(d))
    with pytest.raises(PoseTrackFormatError, match=r"frame 1, field 'annotations\[2\]\.keypoints': has 50 values"):
        load_sequence(path)


def test_bad_posetrack21_file_is_one_line_error(tmp_path, capsys):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    gt = seq([[nose(1)] for _ in range(2)])
    _write_pt21(gt, tmp_path / "gt" / f"{NAME}.json", gt=True)
    d = json.loads((tmp_path / "gt" / f"{NAME}.json").read_text())
    d["images"][1]["ignore_regions_x"] = [[1, 2, 3]]             # y polygons missing
    (tmp_path / "pred" / f"{NAME}.json").write_text(json.dumps(d))
    code = main(["--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--hota"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"pred/{NAME}.json: frame 1, field 'ignore_regions_x/ignore_regions_y'" in err


def test_folder_evaluation_equals_in_memory(tmp_path):
    gt = seq([[nose(1)] for _ in range(4)])
    pred = seq([[nose(7)] for _ in range(3)] + [[]])
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    save_2018(gt, tmp_path / "gt" / f"{NAME}.json")
    save_2018(pred, tmp_path / "pred" / f"{NAME}.json")
    m = evaluate_folders(tmp_path / "gt", tmp_path / "pred", hota=True)
    assert m.summary()["hota"] == evaluate({NAME: gt}, {NAME: pred}, hota=True).summary()["hota"]
