"""Tests of the synthetic world (corrtrack.synth): formats, determinism, visibility, tracks, CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from corrtrack import keypoints as K
from corrtrack.synth import PRESETS, ensure_world, labeled_frames, read_marker
from corrtrack.synth import body as B
from corrtrack.synth import render as R
from corrtrack.synth.annotate import EVAL_SLOTS, coco_person
from corrtrack.synth.textures import Appearance
from corrtrack.synth.world import _coco_item, _video_item

ROOT = Path(__file__).resolve().parents[1]


def _load(p: Path):
    with open(p) as f:
        return json.load(f)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_coco_loads_and_gt_scores_ap_one(tiny_world, split):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ann = tiny_world / "coco" / "annotations" / f"person_keypoints_{split}.json"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        res = [
            {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt.dataset["annotations"]
        ]
        dt = gt.loadRes(res)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert (
        len(gt.getImgIds())
        == {"train2017": PRESETS["tiny"].coco_train, "val2017": PRESETS["tiny"].coco_val}[split]
    )
    assert len(gt.getAnnIds()) > len(gt.getImgIds())
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[5] == pytest.approx(1.0)
    cat = gt.dataset["categories"][0]
    assert cat["keypoints"] == list(K.COCO_NAMES) and cat["skeleton"] == K.coco_skeleton_1based()
    n_occluded = 0
    for a in gt.dataset["annotations"]:
        kp = np.asarray(a["keypoints"]).reshape(17, 3)
        assert set(np.unique(kp[:, 2])) <= {0, 1, 2}
        assert a["num_keypoints"] == int((kp[:, 2] > 0).sum()) > 0
        assert np.all(kp[kp[:, 2] == 0, :2] == 0)
        im = gt.imgs[a["image_id"]]
        lab = kp[kp[:, 2] > 0]
        assert np.all(
            (lab[:, 0] >= 0)
            & (lab[:, 0] <= im["width"] - 1)
            & (lab[:, 1] >= 0)
            & (lab[:, 1] <= im["height"] - 1)
        )
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and a["iscrowd"] == 0 and 0 < a["area"] <= w * h
        assert (tiny_world / "coco" / "images" / split / im["file_name"]).is_file()
        n_occluded += int((kp[:, 2] == 1).sum())
    assert n_occluded > 0, "no occluded (v=1) keypoints at all: occlusion is not simulated"


# --------------------------------------------------------------------------------------------------
# PoseTrack
# --------------------------------------------------------------------------------------------------
def _videos(world: Path, split: str) -> list[Path]:
    files = sorted((world / "posetrack" / "annotations" / split).glob("*.json"))
    assert files, f"no {split} videos"
    return files


@pytest.mark.parametrize("split", ["train", "val"])
def test_posetrack_files_follow_the_2018_format(tiny_world, split):
    suffix = "train" if split == "train" else "test"
    for f in _videos(tiny_world, split):
        data = _load(f)
        seq = f.stem
        assert seq.endswith(f"_mpii_{suffix}") and len(seq.split("_")[0]) == 6
        cat = data["categories"][0]
        assert cat["name"] == "person" and cat["id"] == 1 and cat["keypoints"] == list(K.POSETRACK_NAMES)
        assert cat["skeleton"] == K.posetrack_skeleton_1based()
        images = {im["id"]: im for im in data["images"]}
        assert len(images) == len(data["images"])
        for k, im in enumerate(data["images"]):
            assert im["file_name"] == f"images/{split}/{seq}/{k + 1:06d}.jpg"
            assert (tiny_world / "posetrack" / im["file_name"]).is_file()
            assert im["nframes"] == len(data["images"]) and im["frame_id"] == im["id"]
            assert len(im["ignore_regions_x"]) == len(im["ignore_regions_y"])
        by_image: dict[int, list] = {}
        for a in data["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        # is_labeled matches the presence of annotations; some frames are unlabelled, like the real data.
        assert {i for i, im in images.items() if im["is_labeled"]} == set(by_image)
        assert 2 <= len(by_image) < len(images)
        vis = _load(tiny_world / "posetrack" / "visibility" / split / f"{seq}.json")
        assert set(vis) == {str(a["id"]) for a in data["annotations"]}
        ids = [a["id"] for a in data["annotations"]]
        assert len(set(ids)) == len(ids)
        for img_id, anns in by_image.items():
            tids = [a["track_id"] for a in anns]
            assert len(set(tids)) == len(tids) and all(0 <= t < 10000 for t in tids)
            im = images[img_id]
            for a in anns:
                kp = np.asarray(a["keypoints"], np.float64).reshape(17, 3)
                assert set(np.unique(kp[:, 2])) <= {0, 1}
                assert np.all(kp[list(K.POSETRACK_UNUSED_SLOTS)] == 0)
                assert np.all(kp[kp[:, 2] == 0, :2] == 0)
                assert (kp[EVAL_SLOTS, 2] > 0).sum() >= 1
                lab = kp[kp[:, 2] > 0]
                assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= im["width"] - 1))
                assert np.all((lab[:, 1] >= 0) & (lab[:, 1] <= im["height"] - 1))
                assert (
                    a["bbox_head"][2] > 0 and a["bbox_head"][3] > 0 and a["bbox"][2] > 0 and a["bbox"][3] > 0
                )
                flags = np.asarray(vis[str(a["id"])])
                assert np.array_equal(flags > 0, kp[:, 2] > 0)
        if split == "val":
            dets = _load(tiny_world / "posetrack" / "detections" / "val" / f"{seq}.json")
            assert {d["image_id"] for d in dets} <= set(images) and len({d["image_id"] for d in dets}) > len(
                images
            ) // 2
            assert all(d["category_id"] == 1 and 0 < d["score"] <= 1 and d["bbox"][2] > 0 for d in dets)


def test_posetrack_gt_cannot_confuse_poseval(tiny_world):
    """poseval GT-vs-GT is perfect only if no person is within another's PCKh radius on every joint and every
    person keeps a joint outside the ignore regions (checked here with poseval's own rules)."""
    import cv2

    checked = 0
    for split in ("train", "val"):
        for f in _videos(tiny_world, split):
            data = _load(f)
            images = {im["id"]: im for im in data["images"]}
            by_image: dict[int, list] = {}
            for a in data["annotations"]:
                by_image.setdefault(a["image_id"], []).append(a)
            for img_id, anns in by_image.items():
                im = images[img_id]
                polys = [
                    np.stack([x, y], 1).astype(np.float32)
                    for x, y in zip(im["ignore_regions_x"], im["ignore_regions_y"])
                ]
                kps = [np.asarray(a["keypoints"]).reshape(17, 3)[EVAL_SLOTS] for a in anns]
                for kp in kps:
                    lab = kp[kp[:, 2] > 0]
                    assert any(
                        all(cv2.pointPolygonTest(p, (float(x), float(y)), False) <= 0 for p in polys)
                        for x, y in lab[:, :2]
                    )
                for i, ki in enumerate(kps):
                    for j, kj in enumerate(kps):
                        if i == j:
                            continue
                        hb = anns[j]["bbox_head"]
                        thr = 0.5 * 0.6 * np.hypot(hb[2], hb[3])
                        has = kj[:, 2] > 0
                        d = np.hypot(*(ki[:, :2] - kj[:, :2]).T)
                        assert ((ki[:, 2] > 0) & has & (d <= thr)).sum() < has.sum()
                checked += 1
    assert checked > 10


def test_labeled_frames_schedule():
    tr, va = labeled_frames(40, "train"), labeled_frames(40, "val")
    assert 20 <= tr.sum() <= 26 and not tr[0] and not tr[-1]
    assert va[::4].all() and va[10:30].all() and not va.all()


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------
def test_items_are_deterministic_for_a_seed(tiny_world, tmp_path):
    """Re-rendering an item gives byte-identical files and annotations; another seed differs."""
    a = _coco_item(("tiny", 0, 1, 3, str(tmp_path / "a")))
    name = a["image"]["file_name"]
    world_anns = _load(tiny_world / "coco" / "annotations" / "person_keypoints_val2017.json")
    assert _sha(tmp_path / "a" / "coco" / "images" / "val2017" / name) == _sha(
        tiny_world / "coco" / "images" / "val2017" / name
    )
    mine = [x["keypoints"] for x in a["annotations"]]
    theirs = [x["keypoints"] for x in world_anns["annotations"] if x["image_id"] == a["image"]["id"]]
    assert mine == theirs
    b = _coco_item(("tiny", 1, 1, 3, str(tmp_path / "b")))
    assert _sha(tmp_path / "b" / "coco" / "images" / "val2017" / name) != _sha(
        tmp_path / "a" / "coco" / "images" / "val2017" / name
    )


# --------------------------------------------------------------------------------------------------
# Visibility agrees with the rendering
# --------------------------------------------------------------------------------------------------
def _person(uid, x, depth, yaw=0.0, scale_at_4m=60.0, ground_y=230.0, action="stand"):
    rng = np.random.default_rng(uid)
    shape = B.BodyShape(height=1.75)
    pose = B.action_pose(action, 0.3, B.Style())
    return R.build_person_view(
        uid,
        shape,
        Appearance.random(rng),
        pose,
        yaw,
        np.array([x, ground_y]),
        scale_at_4m * 4.0 / depth,
        depth,
    )


def test_visibility_flags_agree_with_the_rendering():
    W, H = 320, 240
    bg = np.full((H, W, 3), 128, np.uint8)
    near = _person(0, 160.0, 4.0)
    far = _person(1, 163.0, 6.0, ground_y=210.0)  # right behind the near one
    cut = _person(2, 316.0, 5.0)  # half outside the right border
    items = [far, near, cut]
    img, rank, stats = R.render_scene(bg, items)
    assert img.shape == (H, W, 3) and rank.max() == 3
    v = {id(p): R.joint_visibility(p, st.rank, rank) for p, st in zip(items, stats)}
    J = {n: i for i, n in enumerate(K.WORLD_JOINT_NAMES)}
    torso = [J[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    assert np.all(v[id(far)][torso] == 1), "joints covered by a nearer person must be v=1"
    assert np.all(v[id(near)][torso] == 2)
    # Each flag follows the rank buffer: 0 outside, 1 where a nearer item owns the pixel (or far side of the
    # head for face points), else 2.
    for p, st in zip(items, stats):
        for j, (x, y) in enumerate(p.joints):
            inside = 0 <= x <= W - 1 and 0 <= y <= H - 1
            if not inside:
                assert v[id(p)][j] == 0
                continue
            covered = rank[int(round(y)), int(round(x))] > st.rank
            assert v[id(p)][j] == (1 if covered or p.face_hidden[j] else 2)
    assert (v[id(cut)] == 0).any() and (v[id(cut)] > 0).any()
    # The COCO annotation carries exactly these flags, with [0, 0, 0] for joints outside the image.
    ann = coco_person(cut, stats[2], rank, min_visible_frac=0.0)
    kp = np.asarray(ann["keypoints"]).reshape(17, 3)
    assert np.array_equal(kp[:, 2], v[id(cut)][K.WORLD_TO_COCO])
    assert np.all(kp[kp[:, 2] == 0] == 0)


def test_back_of_head_hides_the_face():
    p = _person(0, 160.0, 4.0, yaw=np.pi)
    J = {n: i for i, n in enumerate(K.WORLD_JOINT_NAMES)}
    assert p.face_hidden[[J["nose"], J["left_eye"], J["right_eye"]]].all()
    assert not _person(0, 160.0, 4.0, yaw=0.0).face_hidden[[J["nose"], J["left_eye"], J["right_eye"]]].any()


# --------------------------------------------------------------------------------------------------
# Tracks through occlusion
# --------------------------------------------------------------------------------------------------
def test_track_ids_stay_stable_through_occlusion(tmp_path):
    """Two identically dressed people cross in depth; the far one is hidden for several frames and keeps its
    track id, on a continuous path, afterwards."""
    preset = dataclasses.replace(
        PRESETS["tiny"],
        name="crossing-test",
        walkers=(0, 0),
        standers=(0, 0),
        runners=(0, 0),
        reenter=(0, 0),
        crossing_pairs=(1, 1),
        lookalike_prob=1.0,
        lookalike_group=0.0,
        crowd_prob=0.0,
        occluders=(0, 0),
        frames=(30, 30),
        pan_speed=0.0,
        zoom_range=(1.0, 1.0),
        whip_pan_prob=0.0,
        extra={"crossing": "overtake"},
    )
    out = _video_item((preset, 0, 1, 0, str(tmp_path)))
    video, vis = out["video"], out["visibility"]
    tracks: dict[int, dict[int, np.ndarray]] = {}
    occluded: dict[int, list[int]] = {}
    frame_of = {im["id"]: k for k, im in enumerate(video["images"])}
    for a in video["annotations"]:
        k = frame_of[a["image_id"]]
        kp = np.asarray(a["keypoints"]).reshape(17, 3)
        hips = kp[[11, 12]]
        if (hips[:, 2] > 0).all():
            tracks.setdefault(a["track_id"], {})[k] = hips[:, :2].mean(0)
        flags = np.asarray(vis[str(a["id"])])
        if (flags[EVAL_SLOTS] == 1).sum() >= 5:
            occluded.setdefault(a["track_id"], []).append(k)
    assert len(tracks) == 2
    # Someone is (partly) hidden on several frames ...
    hidden_tid = max(occluded, key=lambda t: len(occluded[t]))
    assert len(occluded[hidden_tid]) >= 3
    # ... and both tracks move on smooth, monotonic paths before, during and after (no identity swap).
    for tid, path in tracks.items():
        ks = sorted(path)
        xs = np.array([path[k][0] for k in ks])
        assert ks[0] < min(occluded[hidden_tid]) and ks[-1] > max(occluded[hidden_tid])
        steps = np.diff(xs) / np.diff(ks)
        assert np.all(np.sign(steps) == np.sign(steps[0])), f"track {tid} reverses: ids swapped?"
        assert np.abs(steps).max() < 3 * np.median(np.abs(steps)) + 2


# --------------------------------------------------------------------------------------------------
# World management and the CLI
# --------------------------------------------------------------------------------------------------
def test_ensure_world_reuses_and_refuses(tiny_world, tmp_path):
    m = read_marker(tiny_world)
    assert (
        m["preset"] == "tiny"
        and m["seed"] == 0
        and m["counts"]["coco_val2017"]["images"] == PRESETS["tiny"].coco_val
    )
    assert ensure_world(tiny_world, "tiny", 0, progress=False) == tiny_world
    with pytest.raises(FileExistsError, match="preset='tiny' seed=0"):
        ensure_world(tiny_world, "tiny", 1, progress=False)
    half = tmp_path / "half"
    (half / "coco").mkdir(parents=True)  # a half-written world: no marker
    with pytest.raises(FileExistsError, match="no complete synthetic world"):
        ensure_world(half, "tiny", 0, progress=False)
    with pytest.raises(ValueError, match="unknown synthetic-world preset"):
        ensure_world(tmp_path / "x", "huge", 0)


def test_world_of_an_earlier_preset_definition_is_regenerated(tiny_world, tmp_path, monkeypatch, capsys):
    """A world whose world.json records other preset values than today's definition is stale:
    ensure_world regenerates it (the current one is reused), and preset_changes names the fields."""
    import corrtrack.synth.world as W

    m = read_marker(tiny_world)
    assert W.preset_changes(m, PRESETS["tiny"]) == []
    old = dict(m, preset_config=dict(m["preset_config"], train_videos=m["preset_config"]["train_videos"] + 5))
    assert W.preset_changes(old, PRESETS["tiny"]) == ["train_videos"]
    assert W.stale_reasons(m, PRESETS["tiny"]) == []
    assert W.stale_reasons(dict(old, version=W.VERSION - 1), PRESETS["tiny"]) == [
        f"generator version {W.VERSION - 1} -> {W.VERSION}", "preset changed: train_videos"]
    root = tmp_path / "stale"
    root.mkdir()
    (root / "world.json").write_text(json.dumps(old))
    calls = []
    monkeypatch.setattr(W, "_generate_into", lambda r, p, seed, *a, **k: calls.append((r, p.name, seed)) or r)
    assert ensure_world(root, "tiny", 0, progress=True) == root
    assert calls == [(root, "tiny", 0)]
    assert "preset changed: train_videos" in capsys.readouterr().out
    (root / "world.json").write_text(json.dumps(m))
    assert ensure_world(root, "tiny", 0, progress=False) == root and len(calls) == 1


def test_regeneration_never_deletes_user_files(tmp_path, monkeypatch, capsys):
    """A stale world is replaced; its folder is deleted only when it holds exactly the generated files,
    otherwise kept beside the new world (user files inside), and that is reported."""
    import corrtrack.synth.world as W

    def fake_write(root, preset, seed, progress, workers):   # the world's content is not the point here
        (root / "coco").mkdir()
        (root / "coco" / "a.json").write_text(f"{seed}")
        return {}

    monkeypatch.setattr(W, "_write_world", fake_write)
    root = tmp_path / "w"
    W.generate_world(root, "tiny", 0, progress=False)
    assert W.foreign_files(root) == []
    (root / "preview").mkdir()
    (root / "preview" / "sheet.png").write_bytes(b"x")        # drawn later by the preview: generated too
    W.generate_world(root, "tiny", 1, progress=False)          # only generated files: the old one goes
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["w"]
    assert (root / "coco" / "a.json").read_text() == "1"

    (root / "notes.txt").write_text("mine")
    (root / "coco" / "a.json").write_text("edited by me")
    assert W.foreign_files(root) == ["coco/a.json", "notes.txt"]
    W.generate_world(root, "tiny", 2, progress=False)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("w.previous-")]
    assert len(kept) == 1 and (kept[0] / "notes.txt").read_text() == "mine"
    assert (kept[0] / "coco" / "a.json").read_text() == "edited by me"
    assert (root / "coco" / "a.json").read_text() == "2" and not (root / "notes.txt").exists()
    assert f"kept as {kept[0]}" in capsys.readouterr().err

    (root / "files.tsv").unlink()                              # a world of an older version: no file list
    W.generate_world(root, "tiny", 3, progress=False)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("w.previous-")]) == 2


def _synth_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """`python -m corrtrack.synth ARGS` in a fresh process, output captured."""
    return subprocess.run([sys.executable, "-m", "corrtrack.synth", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_generates_tiny_end_to_end_identically(tiny_world, tmp_path):
    """`python -m corrtrack.synth` writes the full layout and a preview; the files equal the fixture world
    generated in another process (determinism for a seed)."""
    out = tmp_path / "cli-world"
    r = _synth_cli("--out", str(out), "--preset", "tiny", "--seed", "0", "--preview", "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "synthetic world 'tiny'" in r.stdout
    rel = [
        p.relative_to(tiny_world)
        for p in sorted(tiny_world.rglob("*"))
        if p.is_file() and p.name != "world.json" and "preview" not in p.parts and not p.name.startswith(".")
    ]
    assert any(p.suffix == ".jpg" for p in rel) and any(p.suffix == ".json" for p in rel)
    for p in rel:
        assert (out / p).is_file(), p
        assert _sha(out / p) == _sha(tiny_world / p), f"{p} differs between two runs with seed 0"
    prev = out / "preview"
    assert (prev / "coco_contact_sheet.png").is_file() and (prev / "index.md").is_file()
    assert len(list(prev.glob("*.gif"))) == PRESETS["tiny"].train_videos + PRESETS["tiny"].val_videos
    # A second run keeps the complete world; another seed without --force is refused.
    r2 = _synth_cli("--out", str(out), "--preset", "tiny", "--quiet")
    assert r2.returncode == 0 and "already there" in r2.stdout
    r3 = _synth_cli("--out", str(out), "--preset", "tiny", "--seed", "5", "--quiet")
    assert r3.returncode == 2 and "--force" in r3.stderr
    # A world generated from an earlier definition of the preset is regenerated without --force.
    m = json.loads((out / "world.json").read_text())
    m["preset_config"]["val_videos"] += 1
    (out / "world.json").write_text(json.dumps(m))
    r4 = _synth_cli("--out", str(out), "--preset", "tiny", "--quiet", timeout=300)
    assert r4.returncode == 0 and "regenerating" in r4.stdout and "preset changed: val_videos" in r4.stdout, r4.stderr
    assert read_marker(out)["preset_config"]["val_videos"] == PRESETS["tiny"].val_videos
