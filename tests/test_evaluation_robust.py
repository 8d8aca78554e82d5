"""Inputs that crash poseval get a message naming the file (and frame) or a documented handling, never a
traceback (docs/evaluation.md, "Robustness")."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from corrtrack.evaluate import main
from corrtrack.posetrack import save_2017, save_2018, to_2018_dict
try:
    from test_evaluation import person, seq               # pytest puts tests/ on sys.path
except ImportError:
    from tests.test_evaluation import person, seq

NAME = "000010_mpii_test"


def _pair(n_frames=4, name=NAME):
    gt = seq(name, [[person(1, {"nose": (10, 10), "neck": (10, 30)}), person(2, {"nose": (90, 10)})]
                    for _ in range(n_frames)])
    pr = seq(name, [[person(5, {"nose": (10, 10), "neck": (10, 30)}, {"nose": .9, "neck": .8}),
                     person(6, {"nose": (90, 10)}, {"nose": .7})] for _ in range(n_frames)])
    return gt, pr


def _dirs(tmp_path):
    g, p = tmp_path / "gt", tmp_path / "pred"
    g.mkdir(exist_ok=True)
    p.mkdir(exist_ok=True)
    return g, p


def _run(capsys, *args):
    code = main(list(map(str, args)))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def _metrics(tmp_path, capsys, g, p, *extra):
    out_file = tmp_path / "m.json"
    code, out, err = _run(capsys, "--gt", g, "--pred", p, "--out", out_file, *extra)
    assert code == 0, err
    return json.loads(out_file.read_text()), err


def test_cli_basic_and_folder_without_trailing_slash(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    save_2017(pr, p / f"{NAME}.json")
    a, _ = _metrics(tmp_path, capsys, g, p)
    b, _ = _metrics(tmp_path, capsys, str(g) + "/", str(p) + "/")
    assert a == b and a["mota"]["total"] == pytest.approx(100) and a["ap"]["nose"] == pytest.approx(100)
    code, out, _ = _run(capsys, "--gt", g, "--pred", p)
    assert code == 0 and "& Head & Shou" in out and "MOTA" in out


def test_joint_that_never_appears_in_a_sequence(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    save_2018(pr, p / f"{NAME}.json")
    only_nose = seq("000011_mpii_test", [[person(1, {"nose": (10, 10)})] for _ in range(3)])
    only_nose_pr = seq("000011_mpii_test", [[person(3, {"nose": (10, 10)}, {"nose": .5})] for _ in range(3)])
    save_2017(only_nose, g / "000011_mpii_test.json")
    save_2017(only_nose_pr, p / "000011_mpii_test.json")
    m, _ = _metrics(tmp_path, capsys, g, p, "--hota")
    assert m["mota"]["neck"] == pytest.approx(100)          # pooled over sequences
    assert m["mota"]["head_top"] is None                    # never annotated anywhere: null
    assert math.isfinite(m["mota"]["total"]) and math.isfinite(m["hota"]["total"])


def test_predictions_without_track_id(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    d = to_2018_dict(pr)
    for a in d["annotations"]:
        del a["track_id"]
    (p / f"{NAME}.json").write_text(json.dumps(d))
    m, err = _metrics(tmp_path, capsys, g, p)
    assert "without 'track_id'" in err and f"{NAME}.json" in err
    assert m["ap"]["nose"] == pytest.approx(100)             # AP unaffected
    assert m["num_switches"] > 0                             # each detection is its own track


def test_frame_count_differs_paired_by_name(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair(6)
    save_2018(gt, g / f"{NAME}.json")
    extra = pr.frames[0]
    pr.frames = pr.frames[::2]                               # only every other frame predicted ...
    pr.frames.append(type(extra)(file_name="images/val/x/000999.jpg", persons=list(extra.persons)))
    save_2018(pr, p / f"{NAME}.json")                       # ... plus a frame the GT does not have
    m, err = _metrics(tmp_path, capsys, g, p, "--strict")
    assert "paired by image file name" in err and "1 prediction frame(s) that are not GT frames" in err
    assert m["recall"]["nose"] == pytest.approx(50)


def test_frame_count_differs_unpairable(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair(6)
    save_2018(gt, g / f"{NAME}.json")
    pr.frames = pr.frames[:3]
    for f in pr.frames:
        f.file_name = f.file_name.replace(NAME, "other")
    save_2018(pr, p / f"{NAME}.json")
    code, _, err = _run(capsys, "--gt", g, "--pred", p)
    assert code == 2
    assert f"pred/{NAME}.json has 3 frames but its GT" in err and "has 6" in err and "frame 0" in err
    pr.frames[0].file_name = pr.frames[1].file_name = gt.frames[0].file_name   # a name twice: ambiguous
    save_2018(pr, p / f"{NAME}.json")
    code, _, err = _run(capsys, "--gt", g, "--pred", p)
    assert code == 2 and "twice (frame 1)" in err


@pytest.mark.parametrize("content, words",
                         [("", "empty file"), ('{"images": [{"id": 1, "fi', "truncated JSON")])
def test_empty_or_truncated_file(tmp_path, capsys, content, words):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    (p / f"{NAME}.json").write_text(content)
    code, _, err = _run(capsys, "--gt", g, "--pred", p)
    assert code == 2 and f"pred/{NAME}.json" in err and words in err


def test_nan_and_absurd_coordinates(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    pr.frames[2].persons[0].keypoints[0, :2] = np.nan          # JSON NaN token (what json.dump writes)
    pr.frames[3].persons[1].keypoints[0, :2] = (1e308, -1e308)
    save_2018(pr, p / f"{NAME}.json")
    m, err = _metrics(tmp_path, capsys, g, p, "--hota")
    assert "NaN or infinite" in err and f"{NAME}.json" in err and "frame 2" in err
    assert m["ap"]["nose"] < 100 and math.isfinite(m["mota"]["total"])


def test_duplicate_track_id_in_a_frame(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    pr.frames[1].persons[1].track_id = 5
    save_2018(pr, p / f"{NAME}.json")
    m, err = _metrics(tmp_path, capsys, g, p)
    assert "duplicate predicted track id" in err and "frame 1" in err
    assert m["num_switches"] >= 1


def test_prediction_without_gt_and_gt_without_prediction(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    save_2018(pr, p / f"{NAME}.json")
    gt2, _ = _pair(name="000012_mpii_test")
    save_2018(gt2, g / "000012_mpii_test.json")
    save_2018(pr, p / "000099_mpii_test.json")
    m, err = _metrics(tmp_path, capsys, g, p, "--strict")
    assert "000099_mpii_test.json" in err and "without GT, ignored" in err
    assert "000012_mpii_test.json: has no prediction file" in err
    assert m["recall"]["nose"] == pytest.approx(50)


def test_single_frame_sequence(tmp_path, capsys):
    # poseval's MOT part raises IndexError here; the quirk mode enters no frame of it, strict mode one.
    g, p = _dirs(tmp_path)
    gt, pr = _pair(1)
    save_2017(gt, g / f"{NAME}.json")
    save_2017(pr, p / f"{NAME}.json")
    m, _ = _metrics(tmp_path, capsys, g, p)
    assert m["ap"]["nose"] == pytest.approx(100) and m["num_objects"] == 0 and m["mota"]["total"] is None
    m, _ = _metrics(tmp_path, capsys, g, p, "--strict")
    assert m["mota"]["total"] == pytest.approx(100)


def test_bad_folders(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    code, _, err = _run(capsys, "--gt", tmp_path / "nope", "--pred", p)
    assert code == 2 and "does not exist" in err
    code, _, err = _run(capsys, "--gt", g, "--pred", p)
    assert code == 2 and "holds no *.json files" in err
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    save_2018(pr, p / "000077_mpii_test.json")
    code, _, err = _run(capsys, "--gt", g, "--pred", p)
    assert code == 2 and "has a prediction file of the same name" in err


def test_missing_images_field_names_file(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    (p / f"{NAME}.json").write_text(json.dumps({"annotations": []}))
    code, _, err = _run(capsys, "--gt", g, "--pred", p)
    assert code == 2 and f"pred/{NAME}.json" in err and "missing field 'images'" in err


def test_module_entry_point_without_torch(tmp_path):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    (p / f"{NAME}.json").write_text("")
    r = subprocess.run([sys.executable, "-m", "corrtrack.evaluate", "--gt", str(g), "--pred", str(p)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "empty file" in r.stderr and "Traceback" not in r.stderr
    code = ("import sys, corrtrack.evaluate, corrtrack.evaluation; "
            "bad = [m for m in ('torch', 'pytorch_lightning', 'lightning', 'pandas', 'motmetrics', 'scipy') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_2018_predictions_without_categories_warn_with_the_joint_order(tmp_path, capsys):
    g, p = _dirs(tmp_path)
    gt, pr = _pair()
    save_2018(gt, g / f"{NAME}.json")
    d = to_2018_dict(pr)
    d.pop("categories", None)
    (p / f"{NAME}.json").write_text(json.dumps(d))
    _, err = _metrics(tmp_path, capsys, g, p)
    assert f"{NAME}.json: a PoseTrack 2018 prediction file without 'categories'" in err
    assert "nose, head_bottom, head_top" in err and len(err.strip().splitlines()) == 1
    save_2018(pr, p / f"{NAME}.json")                      # with categories: no warning
    _, err = _metrics(tmp_path, capsys, g, p)
    assert "categories" not in err
