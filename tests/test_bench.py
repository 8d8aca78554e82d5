"""DIS flow, pose warping by flow, and the propagation / speed benchmarks on a hand-made PoseTrack folder."""
from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from corrtrack import bench
from corrtrack.flow import dis_flow, warp_poses_by_flow
from corrtrack.nets import RefinementNet, SiameseNet


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((h // 4, w // 4, 3)).astype(np.float32)
    img = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(np.roll(img, dy, axis=0), dx, axis=1)


def test_dis_flow_recovers_translation():
    a = _texture(96, 128)
    b = _shift(a, 5, 3)
    flow = dis_flow(a, b)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [5, 3], atol=0.5)
    half = dis_flow(a, b, preset="fast", max_side=64)          # computed at half size, rescaled
    np.testing.assert_allclose(np.median(half[16:-16, 16:-16].reshape(-1, 2), axis=0), [5, 3], atol=1.0)


def test_warp_poses_by_flow_moves_present_joints_only():
    flow = np.zeros((50, 60, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    poses = np.array([[[10.0, 10.0, 1], [0, 0, 0], [59.0, 49.0, 0.5]]])
    out = warp_poses_by_flow(poses, flow)
    np.testing.assert_allclose(out[0, 0], [12, 9, 1])
    np.testing.assert_allclose(out[0, 1], [0, 0, 0])
    np.testing.assert_allclose(out[0, 2], [61, 48, 0.5])


SHIFT = 12  # px per frame: beyond the PCKh threshold (0.5 * 0.6 * 20 * sqrt 2 = 8.5 px)


def make_posetrack(root, with_vis: bool = True):
    """One val video, frames 1-3 labeled and consecutive, frame 5 labeled after an unlabeled gap:
    two pairs (1, 2) and (2, 3). A textured scene translates SHIFT px right per frame; two persons."""
    seq = "000001_mpii_test"
    (root / "posetrack" / "images" / "val" / seq).mkdir(parents=True)
    (root / "posetrack" / "annotations" / "val").mkdir(parents=True)
    base = _texture(128, 192, seed=1)
    images, anns, vis = [], [], {}
    kp0 = np.zeros((2, 17, 3))
    rng = np.random.default_rng(0)
    for p in range(2):
        kp0[p, :, 0] = 40 + 60 * p + rng.random(17) * 20
        kp0[p, :, 1] = 40 + rng.random(17) * 40
        kp0[p, :, 2] = 1
    kp0[:, 3:5] = 0                                # ears unused in PoseTrack files
    for i, n in enumerate([1, 2, 3, 4, 5]):
        name = f"images/val/{seq}/{n:06d}.jpg"
        cv2.imwrite(str(root / "posetrack" / name), cv2.cvtColor(_shift(base, SHIFT * i, 0), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 98])
        labeled = n != 4
        images.append({"id": n, "file_name": name, "frame_id": n, "vid_id": 1, "nframes": 5,
                       "is_labeled": labeled, "ignore_regions_x": [], "ignore_regions_y": []})
        if not labeled:
            continue
        for p in range(2):
            kp = kp0[p].copy()
            kp[:, 0] += SHIFT * i * (kp[:, 2] > 0)
            aid = 100 * n + p
            anns.append({"id": aid, "image_id": n, "track_id": p, "category_id": 1,
                         "keypoints": kp.reshape(-1).tolist(), "bbox": [0, 0, 40, 40],
                         "bbox_head": [kp[0, 0] - 10, kp[0, 1] - 10, 20, 20]})
            flags = [2] * 17
            flags[5] = 1                             # left shoulder occluded
            vis[str(aid)] = flags
    cats = [{"id": 1, "name": "person", "keypoints": []}]
    (root / "posetrack" / "annotations" / "val" / f"{seq}.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    if with_vis:
        (root / "posetrack" / "visibility" / "val").mkdir(parents=True)
        (root / "posetrack" / "visibility" / "val" / f"{seq}.json").write_text(json.dumps(vis))
    return root


def test_load_pairs_only_consecutive_labeled(tmp_path):
    pairs, has_vis = bench.load_pairs(make_posetrack(tmp_path), "val")
    assert [p.frame_a for p in pairs] == [1, 2] and has_vis
    assert pairs[0].kp_a.shape == (2, 17, 3) and pairs[0].vis_a.shape == (2, 17)
    np.testing.assert_allclose(pairs[0].head_b, 0.6 * np.hypot(20, 20))


def _tiny_ckpt(path):
    sia, ref = SiameseNet("release", width=0.125), RefinementNet(width=0.125)
    state = {**{f"siamese.{k}": v for k, v in sia.state_dict().items()},
             **{f"refinement.{k}": v for k, v in ref.state_dict().items()}}
    torch.save({"state_dict": state, "hyper_parameters": {"net": {"siamese": sia.config(),
                                                                   "refinement": ref.config()}}}, path)
    return path


def test_propagation_benchmark_cli(tmp_path, capsys):
    make_posetrack(tmp_path)
    ckpt = _tiny_ckpt(tmp_path / "refine.ckpt")
    out = tmp_path / "res" / "results.json"
    assert bench.main(["propagation", "--data", str(tmp_path), "--ckpt", str(ckpt), "--input-size", "64",
                       "--out", str(out), "--device", "cpu"]) == 0
    res = json.loads(out.read_text())
    t = res["table"]
    n_joints = 2 * 2 * 15                              # 2 pairs x 2 persons x 15 annotated joints
    assert t["all"]["zero"]["joints"] == n_joints and t["all"]["zero"]["pckh"] == 0.0
    assert t["all"]["dis_flow"]["pckh"] > 80.0        # the flow follows the translating scene
    assert t["occluded"]["zero"]["joints"] == 4 and t["moved"]["zero"]["joints"] == n_joints
    assert t["all"]["siamese"]["pckh"] is not None and t["all"]["refined"]["pckh"] is not None
    md = out.with_suffix(".md").read_text()
    assert "DIS optical flow" in md and "occluded in either frame" in md
    assert "zero motion" in capsys.readouterr().out
    chart = cv2.imread(str(out.with_suffix(".png")))
    assert chart is not None and chart.shape == (420, 900, 3)
    # the DIS bars (> 80 %) are drawn in their colour over most of the plot's height (about 280 px); the
    # zero-motion bars (0 %) leave only the legend's patch (and stray anti-aliased text pixels)
    rgb = chart[..., ::-1]
    rows_with = {c: int((rgb == np.array(bench.COLUMN_COLOURS[c], np.uint8)).all(-1).any(1).sum())
                 for c in ("dis_flow", "zero")}
    assert rows_with["dis_flow"] > 200 and rows_with["zero"] < 30


def test_propagation_without_sidecar_or_ckpt(tmp_path):
    make_posetrack(tmp_path, with_vis=False)
    res = bench.run_propagation(tmp_path, None, progress=False)
    assert res["table"]["occluded"]["zero"]["pckh"] is None
    assert res["table"]["all"]["siamese"]["pckh"] is None
    assert "n/a" in bench.markdown_table(res)


def test_speed_benchmark_batched_beats_loop():
    a = bench.affinity_speed(persons=4, joints=17, size=32, channels=16, repeats=2)
    assert a["speedup"] > 1.0
    t = bench.training_speed("release", width=0.125, input_size=64, batch_size=2, persons=2, steps=1)
    assert t["pairs_per_s"] > 0


def test_training_speed_mixed_precision_and_bad_precision():
    t = bench.training_speed("release", width=0.125, input_size=64, batch_size=2, persons=2, steps=1,
                             precision="bf16")
    assert t["precision"] == "bf16" and t["device"] == "cpu" and t["pairs_per_s"] > 0
    try:
        bench.training_speed("release", width=0.125, input_size=64, batch_size=2, precision="8")
    except ValueError as e:
        assert "precision" in str(e)
    else:
        raise AssertionError("an unknown precision must be refused")
