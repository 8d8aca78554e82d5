"""Tracking a plain video file (``python -m corrtrack.track --video``): a tiny MP4 written here with two
drawn walkers, OpenCV's HOG people detector, COCO and MOT detection files (0- and 1-based frames), the
frame reader, and one clear line for bad input."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from corrtrack.posetrack import PoseTrackFormatError, load_mot_detections, load_sequence
from corrtrack.tracking import TrackingConfig, TrackingInputError
from corrtrack.tracking.footage import (FootageVideo, HOGPeopleDetector, box_nms, load_detection_file,
                                        margin_score, scan_video)
from tests.tracking_helpers import save_tiny_checkpoints

REPO = Path(__file__).resolve().parents[1]
NUM_FRAMES = 6
SIZE = (240, 320)                                                # H, W
TINY = ["input_size=128", "joint_threshold=0", "match_joint_threshold=0"]   # untrained nets score joints ~0.02


def walker(img: np.ndarray, cx: float, top: float, height: float = 110.0, color=(40, 40, 40)) -> None:
    """Draw a dark standing person (head, torso, arms, legs), ``height`` pixels tall, on ``img``."""
    s = height / 110.0

    def pt(dx, dy):
        return int(round(cx + dx * s)), int(round(top + dy * s))

    cv2.circle(img, pt(0, 10), int(9 * s), color, -1)
    cv2.rectangle(img, pt(-13, 20), pt(13, 62), color, -1)
    for side in (-1, 1):
        cv2.line(img, pt(13 * side, 24), pt(19 * side, 60), color, int(6 * s))
        cv2.line(img, pt(6 * side, 60), pt(9 * side, 108), color, int(9 * s))


def walker_positions(f: int) -> list[tuple[float, float]]:
    """(centre x, top y) of the two walkers in frame f: one walks right, one left."""
    return [(80.0 + 6 * f, 60.0), (240.0 - 6 * f, 70.0)]


def frame_image(f: int) -> np.ndarray:
    """Frame f of the tiny video as BGR (what cv2.VideoWriter takes)."""
    img = np.full((*SIZE, 3), 200, np.uint8)
    img[:, :, 1] = 190 + f                                       # frames differ slightly besides the walkers
    for cx, top in walker_positions(f):
        walker(img, cx, top)
    return img


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("footage") / "walkers.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (SIZE[1], SIZE[0]))
    assert writer.isOpened()
    for f in range(NUM_FRAMES):
        writer.write(frame_image(f))
    writer.release()
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    return save_tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))


def _main(capsys, *args: str) -> subprocess.CompletedProcess:
    from corrtrack.track import main

    rc = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), rc, out.out, out.err)


# ------------------------------------------------------------------------------------- the pieces

def test_frames_read_in_order_and_back(tiny_mp4):
    video, dets = scan_video(tiny_mp4, progress=False)
    assert dets is None and len(video) == NUM_FRAMES and video.size_hw == SIZE and video.fps == pytest.approx(5.0)
    assert [f.file_name for f in video.gt.frames[:2]] == ["walkers/000000.jpg", "walkers/000001.jpg"]
    assert [f.image_id for f in video.gt.frames] == list(range(NUM_FRAMES))
    frames = [video.image(i).astype(np.int16) for i in range(NUM_FRAMES)]
    for f, img in enumerate(frames):                              # RGB, the right frame (lossy codec)
        assert img.shape == (*SIZE, 3)
        assert abs(np.median(img[:5, :5, 1]) - (190 + f)) <= 3 and abs(np.median(img[:5, :5, 0]) - 200) <= 3
    again = video.image(2).astype(np.int16)                        # going back reopens the file
    assert np.abs(again - frames[2]).max() == 0
    assert len(scan_video(tiny_mp4, max_frames=4, progress=False)[0]) == 4
    head = video.head(3)
    assert isinstance(head, FootageVideo) and len(head) == 3
    assert np.abs(head.image(1).astype(np.int16) - frames[1]).max() == 0
    head.close()
    video.close()


def test_hog_finds_the_walkers():
    det = HOGPeopleDetector(TrackingConfig())
    boxes = det(cv2.cvtColor(frame_image(0), cv2.COLOR_BGR2RGB))
    assert boxes.shape[1] == 5 and len(boxes) >= 2
    assert np.all(np.diff(boxes[:, 4]) <= 0) and np.all((boxes[:, 4] > 0.5) & (boxes[:, 4] < 1))
    for cx, top in walker_positions(0):                           # each walker in one box hugging it
        hit = [b for b in boxes if b[0] <= cx <= b[0] + b[2] and b[1] - 15 <= top <= b[1] + 0.3 * b[3]]
        assert len(hit) == 1, (cx, boxes)
        assert 80 <= hit[0][3] <= 150 and hit[0][2] < 0.6 * hit[0][3]
    assert len(det(np.full((100, 60, 3), 128, np.uint8))) == 0    # smaller than one window
    assert len(det(np.full((*SIZE, 3), 128, np.uint8))) == 0      # nobody there


def test_box_nms_and_scores():
    boxes = np.array([[0, 0, 10, 20], [1, 1, 10, 20], [50, 0, 10, 20], [0, 0, 4, 8]], dtype=float)
    keep = box_nms(boxes, np.array([0.6, 0.9, 0.7, 0.8]), 0.4)
    assert keep.tolist() == [1, 3, 2]                              # box 0 overlaps box 1 (IoU 0.74)
    assert box_nms(boxes, np.array([0.6, 0.9, 0.7, 0.8]), 0.8).tolist() == [1, 3, 2, 0]
    np.testing.assert_allclose(margin_score([0.0, 2.0, -2.0]), [0.5, 0.880797, 0.119203], atol=1e-6)


def test_mot_det_txt_one_based_frames(tmp_path):
    f = tmp_path / "det.txt"
    f.write_text("1,-1,10,20,30,60,0.9,-1,-1,-1\n"
                 "1,-1,100,20,30,60,0.95,-1,-1,-1\n"
                 "\n"
                 "# a comment\n"
                 "3,-1,5.5,6,40,80,0.4\n"
                 "3 -1 7 8 40 80 0.8\n"                           # blank-separated columns
                 "2,-1,0,0,1,80,0.99\n")                          # a degenerate box
    dets = load_mot_detections(f, min_score=0.3)
    assert sorted(dets) == [0, 2]                                  # MOT frame 1 -> frame 0
    np.testing.assert_array_equal(dets[0], [[100, 20, 30, 60, 0.95], [10, 20, 30, 60, 0.9]])
    np.testing.assert_array_equal(dets[2], [[7, 8, 40, 80, 0.8], [5.5, 6, 40, 80, 0.4]])
    assert sorted(load_mot_detections(f, min_score=0.5)[2][:, 4]) == [0.8]
    for text, needle in (("1,-1,10,20,30,60\n", "line 1"), ("1,-1,10,20,abc,60,0.9\n", "line 1, w"),
                         ("1,-1,1,2,3,4,0.5\n0,-1,10,20,30,60,0.9\n", "line 2, frame"),
                         ("1.5,-1,10,20,30,60,0.9\n", "frame"), ("1,-1,10,20,30,nan,0.9\n", "line 1, h")):
        f.write_text(text)
        with pytest.raises(PoseTrackFormatError, match=needle) as e:
            load_mot_detections(f)
        assert str(f) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        load_mot_detections(tmp_path / "nothing.txt")


def test_detection_file_formats_and_frame_conventions(tmp_path, caplog):
    coco = tmp_path / "dets.json"
    coco.write_text(json.dumps([{"image_id": 0, "bbox": [1, 2, 30, 60], "score": 0.9, "category_id": 1},
                                {"image_id": 4, "bbox": [5, 6, 30, 60], "score": 0.8},
                                {"image_id": 6, "bbox": [5, 6, 30, 60], "score": 0.8}]))   # past a 6-frame end
    mot = tmp_path / "det.txt"
    mot.write_text("1,-1,1,2,30,60,0.9,-1,-1,-1\n5,-1,5,6,30,60,0.8,-1,-1,-1\n")
    with caplog.at_level(logging.WARNING, logger="corrtrack"):
        a = load_detection_file(coco, num_frames=6)
    assert "1 detection(s) on frame(s) 6..6" in caplog.text and "0-based" in caplog.text
    b = load_detection_file(mot, num_frames=6)
    assert sorted(a) == sorted(b) == [0, 4]                        # the same boxes in both conventions
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(TrackingInputError, match="empty.txt.*empty file"):
        load_detection_file(empty, 6)
    with pytest.raises(TrackingInputError, match="not a detection file"):
        load_detection_file(tmp_path, 6)


# ------------------------------------------------------------------------------------ the command line

def test_cli_hog_end_to_end_with_render(tiny_mp4, ckpts, tmp_path):
    """As a user runs it: HOG boxes -> tiny pose net -> recovery -> corr association -> PoseTrack 2018 file
    with one image per frame, and an MP4 with every frame."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "corrtrack.track", "--video", str(tiny_mp4), "--out", str(out),
                        "--cue", "corr", "--pose-ckpt", str(ckpts["pose"]), "--corr-ckpt", str(ckpts["corr"]),
                        "--render", "--quiet", *TINY], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "person box(es) from hog" in r.stderr and "frames/s" in r.stderr
    seq = load_sequence(str(out / "walkers.json"))
    assert [f.file_name for f in seq.frames] == [f"walkers/{i:06d}.jpg" for i in range(NUM_FRAMES)]
    assert [f.image_id for f in seq.frames] == list(range(NUM_FRAMES))
    assert all(len(f.persons) >= 2 for f in seq.frames)            # both walkers found in every frame
    assert all(p.track_id is not None and np.isfinite(p.keypoints).all() for f in seq.frames for p in f.persons)
    summary = json.loads((out / "results" / "summary.json").read_text())
    assert summary["boxes"] == "hog" and summary["frames"] == NUM_FRAMES and summary["frames_per_second"] > 0
    assert summary["seconds_by_stage"]["hog"] > 0 and summary["seconds_by_stage"]["pose"] > 0
    cap = cv2.VideoCapture(str(out / "render" / "walkers.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == NUM_FRAMES and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)


@pytest.mark.parametrize("fmt", ["coco", "mot"])
def test_cli_detection_files_land_on_the_right_frames(tiny_mp4, ckpts, tmp_path, capsys, fmt):
    """The boxes of a detection file are the candidates' boxes on the frames the conventions say."""
    boxes = {f: [[cx - 20, top, 40, 110] for cx, top in walker_positions(f)] for f in (1, 3)}
    if fmt == "coco":
        path = tmp_path / "dets.json"
        path.write_text(json.dumps([{"image_id": f, "bbox": b, "score": 0.9} for f, bs in boxes.items() for b in bs]))
    else:
        path = tmp_path / "det.txt"
        path.write_text("".join(f"{f + 1},-1,{b[0]},{b[1]},{b[2]},{b[3]},0.9,-1,-1,-1\n"
                                for f, bs in boxes.items() for b in bs))
    out = tmp_path / "out"
    r = _main(capsys, "--video", str(tiny_mp4), "--out", str(out), "--cue", "oks", "--detections", str(path),
              "--pose-ckpt", str(ckpts["pose"]), "--corr-ckpt", str(ckpts["corr"]), "--quiet", "recovery=false",
              *TINY)
    assert r.returncode == 0, r.stderr
    seq = load_sequence(str(out / "walkers.json"))
    assert len(seq.frames) == NUM_FRAMES
    for f, fr in enumerate(seq.frames):
        got = sorted(np.round(p.bbox).tolist() for p in fr.persons)
        assert got == sorted(boxes.get(f, [])), f
    assert json.loads((out / "results" / "summary.json").read_text())["boxes"] == str(path)


def test_cli_bad_input_one_line(tiny_mp4, ckpts, tmp_path, capsys):
    base = ["--out", str(tmp_path / "o"), "--quiet", "--pose-ckpt", str(ckpts["pose"]), "--corr-ckpt",
            str(ckpts["corr"])]

    def one_line_error(args, *needles):
        r = _main(capsys, *base, *args)
        assert r.returncode == 2, (r.returncode, r.stderr)
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
        for n in needles:
            assert n in lines[0], lines[0]

    missing = tmp_path / "missing.mp4"
    one_line_error(["--video", str(missing)], str(missing), "not found")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4096))
    one_line_error(["--video", str(garbage)], str(garbage))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    one_line_error(["--video", str(empty)], str(empty))
    no_frames = tmp_path / "no_frames.mp4"                        # a container without a single frame
    cv2.VideoWriter(str(no_frames), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (SIZE[1], SIZE[0])).release()
    one_line_error(["--video", str(no_frames)], str(no_frames))
    bad_mot = tmp_path / "det.txt"
    bad_mot.write_text("1,-1,10,20,30,60,0.9\n2,-1,10,20,thirty,60,0.9\n")
    one_line_error(["--video", str(tiny_mp4), "--detections", str(bad_mot)], str(bad_mot), "line 2, w")
    bad_coco = tmp_path / "dets.json"
    bad_coco.write_text('[{"image_id": 0, "bbox": [1, 2, 3]}]')
    one_line_error(["--video", str(tiny_mp4), "--detections", str(bad_coco)], str(bad_coco), "[0].bbox")
    bad_coco.write_text('[{"image_id": 0, "bbox": [1, 2, 3, 4]')
    one_line_error(["--video", str(tiny_mp4), "--detections", str(bad_coco)], str(bad_coco))
    one_line_error(["--video", str(tiny_mp4), "--detections", str(tmp_path / "none.txt")], "none.txt", "not found")
    one_line_error(["--video", str(tiny_mp4), "labeled_only=true"], "labeled_only")
