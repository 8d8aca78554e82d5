"""PoseTrack 2017 / 2018 readers and writers: round trips and named errors on malformed files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from corrtrack.keypoints import EVAL_TO_POSETRACK, NUM_JOINTS, POSETRACK_NAMES
from corrtrack.posetrack import (Frame, Person, PoseTrackFormatError, Sequence, frame_number, head_size,
                                 load_folder, load_sequence, save_2017, save_2018, to_2017_dict, to_2018_dict)


def _person(track_id: int, offset: float, scores: bool = True, missing=(3, 4, 16)) -> Person:
    kp = np.zeros((NUM_JOINTS, 3))
    for s in range(NUM_JOINTS):
        if s not in missing:
            kp[s] = (100 + 10 * s + offset, 50 + 3 * s + offset, 1)
    sc = np.linspace(0.1, 0.9, NUM_JOINTS) if scores else None
    if sc is not None:
        sc[list(missing)] = 0.0
    return Person(kp, track_id=track_id, scores=sc, head_box=np.array([95.0 + offset, 40.0, 20.0, 24.0]),
                  bbox=np.array([90.0, 30.0, 200.0, 120.0]))


def _sequence(scores: bool = True) -> Sequence:
    frames = []
    for f in range(4):
        persons = [] if f == 2 else [_person(7, f, scores), _person(9, 50 + f, scores, missing=(3, 4, 0, 1))]
        regions = [np.array([[0.0, 0.0], [30.0, 0.0], [30.0, 30.0]])] if f == 1 else []
        frames.append(Frame(file_name=f"images/val/000342_mpii_test/{f:06d}.jpg", image_id=10003420000 + f,
                            persons=persons, is_labeled=f != 2, ignore_regions=regions))
    return Sequence(name="000342_mpii_test", frames=frames, vid_id=342)


def _same(a: Sequence, b: Sequence, scores: bool = True) -> None:
    assert len(a.frames) == len(b.frames)
    for fa, fb in zip(a.frames, b.frames):
        assert fa.file_name == fb.file_name
        assert fa.is_labeled == fb.is_labeled
        assert len(fa.ignore_regions) == len(fb.ignore_regions)
        for ra, rb in zip(fa.ignore_regions, fb.ignore_regions):
            np.testing.assert_allclose(ra, rb)
        assert len(fa.persons) == len(fb.persons)
        for pa, pb in zip(fa.persons, fb.persons):
            assert pa.track_id == pb.track_id
            np.testing.assert_array_equal(pa.present, pb.present)
            np.testing.assert_allclose(pa.keypoints[pa.present], pb.keypoints[pb.present])
            np.testing.assert_allclose(pa.head_box, pb.head_box)
            if scores:
                np.testing.assert_allclose(pa.scores[pa.present], pb.scores[pb.present])


@pytest.mark.parametrize("first", ["2018", "2017"])
def test_round_trip_2017_2018(tmp_path, first):
    seq = _sequence()
    p1, p2, p3 = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    save1, save2 = (save_2018, save_2017) if first == "2018" else (save_2017, save_2018)
    save1(seq, p1)
    s1 = load_sequence(p1)
    assert s1.format == first and s1.name == "a"
    _same(seq, s1)
    save2(s1, p2)
    s2 = load_sequence(p2)
    assert s2.format != first
    _same(seq, s2)
    save1(s2, p3)
    _same(seq, load_sequence(p3))


def test_2018_writer_fields_and_2017_joint_ids(tmp_path):
    seq = _sequence()
    d18 = to_2018_dict(seq)
    assert set(d18) == {"images", "annotations", "categories"}
    ann = d18["annotations"][0]
    assert len(ann["keypoints"]) == 51 and len(ann["scores"]) == 17 and ann["track_id"] == 7
    assert ann["keypoints"][3 * 16: 3 * 16 + 3] == [0, 0, 0]          # absent slot written as 0, 0, 0
    assert d18["categories"][0]["keypoints"] == list(POSETRACK_NAMES)
    img = d18["images"][1]
    assert img["ignore_regions_x"] == [[0, 30, 30]] and img["ignore_regions_y"] == [[0, 0, 30]]
    # 2017: eval ids 0..14; right_ankle (eval 0) is slot 16, which is missing for person 7
    d17 = to_2017_dict(seq)
    rect = d17["annolist"][0]["annorect"][0]
    ids = [p["id"][0] for p in rect["annopoints"][0]["point"]]
    assert 0 not in ids and sorted(ids) == list(range(1, 15))
    nose = next(p for p in rect["annopoints"][0]["point"] if p["id"] == [13])
    assert nose["x"] == [100] and nose["y"] == [50]                        # slot 0 = eval 13
    assert rect["x2"][0] - rect["x1"][0] == 20 and rect["track_id"] == [7]
    assert EVAL_TO_POSETRACK[13] == 0


def test_2017_semantics(tmp_path):
    data = {"annolist": [{
        "image": [{"name": "images/x/000001_mpii_test/000000.jpg"}],
        "annorect": [
            {"track_id": [3], "x1": [0], "y1": [0], "x2": [10], "y2": [10],
             "annopoints": [{"point": [{"id": [13], "x": [5.0], "y": [6.0], "score": [0.5]},
                                       {"id": [13], "x": [99.0], "y": [99.0]},       # repeated id: first wins
                                       {"id": [20], "x": [1.0], "y": [1.0]},         # not an eval joint
                                       {"id": [0], "x": [0], "y": [0], "is_visible": [0]}]}]},
            {"track_id": [4], "x1": [0], "y1": [0], "x2": [10], "y2": [10]},      # no annopoints
        ],
        "ignore_regions": [{"point": [{"x": [0], "y": [0]}, {"x": [5], "y": [0]}, {"x": [5], "y": [5]}]}],
    }]}
    p = tmp_path / "s.json"
    p.write_text(json.dumps(data))
    seq = load_sequence(p)
    a, b = seq.frames[0].persons
    assert a.present.sum() == 2 and a.present[0] and a.present[16]   # point at (0, 0), v=0 still present
    np.testing.assert_allclose(a.keypoints[0], [5, 6, 1])
    assert a.scores[0] == 0.5 and np.isnan(a.scores[16])
    assert a.has_points and not b.has_points
    np.testing.assert_allclose(a.head_box, [0, 0, 10, 10])
    assert seq.frames[0].ignore_regions[0].shape == (3, 2)


def test_load_folder(tmp_path):
    seq = _sequence()
    save_2018(seq, tmp_path / "a.json")
    save_2017(seq, tmp_path / "b.json")
    (tmp_path / "notes.txt").write_text("x")
    out = load_folder(tmp_path, sort=True)
    assert list(out) == ["a", "b"] and out["b"].format == "2017"


def _write(tmp_path, text: str):
    p = tmp_path / "bad.json"
    p.write_text(text)
    return p


def _ann(**kw):
    a = {"image_id": 1, "track_id": 0, "keypoints": [1.0] * 51, "scores": [0.5] * 17}
    a.update(kw)
    return a


def _doc18(*anns, images=None):
    if images is None:
        images = [{"id": 1, "file_name": "a/000001_mpii_test/0.jpg"}]
    return json.dumps({"images": images, "annotations": list(anns)})


@pytest.mark.parametrize("text, words", [
    ("", ["empty file"]),
    ("   \n", ["empty file"]),
    ('{"images": [{"id": 1, "file_name": "a', ["truncated JSON"]),
    ("[1, 2]", ["top level is a JSON array"]),
    ('{"foo": 1}', ["missing field 'images'", "'annolist'", "'foo'"]),
    ('{"images": 3}', ["field 'images'", "expected a list"]),
    (_doc18(_ann(keypoints=[1.0] * 50)), ["frame 0", "annotations[0].keypoints", "50 values, expected 51"]),
    (_doc18(_ann(), _ann(keypoints=[1.0] * 50 + ["a"])), ["annotations[1].keypoints", "string \"a\""]),
    (_doc18(_ann(keypoints=[1.0] * 50 + [None])), ["annotations[0].keypoints", "null"]),
    (_doc18(_ann(scores=[0.5] * 16)), ["annotations[0].scores", "16 values, expected 17"]),
    (_doc18(_ann(track_id="x")), ["annotations[0].track_id", "expected an integer"]),
    (_doc18(_ann(bbox_head=[1, 2, 3])), ["annotations[0].bbox_head", "3 values, expected 4"]),
    (_doc18(_ann(image_id=None)), ["annotations[0].image_id", "missing"]),
    (_doc18(_ann(), images=[{"file_name": "x"}]), ["images[0].id", "missing field 'id'"]),
    (_doc18(images=[{"id": 1}, {"id": 1}]), ["frame 1", "duplicate image id 1"]),
    (json.dumps({"images": [{"id": 1, "ignore_regions_x": [[1, 2, 3]], "ignore_regions_y": []}]}),
     ["frame 0", "ignore_regions", "1 x polygons but 0 y polygons"]),
    (json.dumps({"annolist": {"a": 1}}), ["field 'annolist'", "expected a list"]),
    (json.dumps({"annolist": [{"annorect": [{"annopoints": [{"point": [{"id": [1], "x": ["7"],
                                                                          "y": [1]}]}]}]}]}),
     ["frame 0", "annolist[0].annorect[0].annopoints[0].point[0].x", "string"]),
    (json.dumps({"annolist": [{}, {"annorect": [{"annopoints": [{"point": [{"id": [1], "y": [1]}]}]}]}]}),
     ["frame 1", "point[0].x", "missing field 'x'"]),
    (json.dumps({"annolist": [{"annorect": [{"x1": [0], "y1": [0], "x2": [1]}]}]}),
     ["frame 0", "x1/y1/x2/y2"]),
])
def test_malformed_files_name_file_and_field(tmp_path, text, words):
    p = _write(tmp_path, text)
    with pytest.raises(PoseTrackFormatError) as e:
        load_sequence(p)
    msg = str(e.value)
    assert msg.startswith(str(p)), msg
    for w in words:
        assert w in msg, (w, msg)


def test_2018_lenient_parts(tmp_path, caplog):
    images = [{"id": 1, "file_name": "a/000001_mpii_test/000000.jpg", "is_labeled": True},
              {"id": 2, "file_name": "a/000001_mpii_test/000001.jpg"}]
    anns = [_ann(scores=[], bbox_head=[0, 0, 10, 10]), _ann(image_id=2, track_id=None), _ann(image_id=77)]
    p = _write(tmp_path, json.dumps({"images": images, "annotations": anns}))
    seq = load_sequence(p)
    assert [len(f.persons) for f in seq.frames] == [1, 1]
    assert seq.frames[0].persons[0].scores is None                    # [] means "no scores"
    assert seq.frames[1].persons[0].track_id is None
    assert "refer to an image id that is not in 'images'" in caplog.text


def test_head_size_is_poseval_diagonal_rule():
    assert head_size([10.0, 20.0, 30.0, 40.0]) == pytest.approx(0.6 * 50.0)
    boxes = np.array([[0.0, 0.0, 3.0, 4.0], [5.0, 5.0, 0.0, 0.0], [np.nan, 0.0, 1.0, 1.0]])
    hs = head_size(boxes)
    assert hs.shape == (3,) and hs[0] == pytest.approx(3.0) and hs[1] == 0.0 and np.isnan(hs[2])


def test_frame_number_is_integer_file_stem():
    assert frame_number("images/val/000342_mpii_test/000017.jpg") == 17
    with pytest.raises(ValueError, match="frame_a.jpg"):
        frame_number("images/val/x/frame_a.jpg")


def test_2018_reader_keeps_annotation_ids_and_image_size(tmp_path):
    d = to_2018_dict(_sequence())
    d["images"][0].update(width=640, height=360)
    for fast in (True, False):
        if not fast:                                   # an unusual value sends the file down the validating path
            d["annotations"][0]["track_id"] = 7.0
        (tmp_path / "v.json").write_text(json.dumps(d))
        seq = load_sequence(str(tmp_path / "v.json"))
        assert (seq.frames[0].width, seq.frames[0].height) == (640, 360)
        assert seq.frames[1].width is None
        ids = [p.ann_id for fr in seq.frames for p in fr.persons]
        assert ids == [a["id"] for a in d["annotations"]]
