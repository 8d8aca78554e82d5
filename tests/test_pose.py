"""Pose estimator: targets <-> decoding, flip test, the network, the inference API, the training stages."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from corrtrack import geometry
from corrtrack.keypoints import COCO_FLIP_PERM, COCO_NAMES, layout
from corrtrack.pose import (PoseEstimator, decode, encode_targets, flip_back, flip_test_decode)

H, W = 128, 96


def _random_pose(rng, h=H, w=W, j=17) -> np.ndarray:
    return np.c_[rng.uniform(0, w - 1, j), rng.uniform(0, h - 1, j), np.full(j, 2.0)]


def _mirror(kp: np.ndarray, width: int, perm: np.ndarray) -> np.ndarray:
    """Keypoints of the horizontally mirrored crop, labels swapped (what the net should see)."""
    m = kp.copy()
    m[:, 0] = width - 1 - m[:, 0]
    return m[perm]


def _as_outputs(t: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(t["heatmaps"])[None], torch.from_numpy(t["offsets"])[None]


# --------------------------------------------------------------------------------------------------
# targets and decoding
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride,radius,kind,vote", [(8, 2.0, "disk", 0.0), (4, 1.5, "disk", 0.0),
                                                     (16, 1.0, "disk", 0.0), (8, 1.5, "gaussian", 0.0),
                                                     (4, 2.0, "disk", 2.0), (8, 1.0, "disk", 3.0)])
def test_encode_then_decode_is_identity(stride, radius, kind, vote):
    rng = np.random.default_rng(stride)
    for _ in range(5):
        kp = _random_pose(rng)
        t = encode_targets(kp, (H, W), stride, radius, kind)
        hm, off = _as_outputs(t)
        # any cell of the disk may win the argmax: the offset there must still land on the joint
        hm = hm * torch.from_numpy(rng.uniform(0.5, 1.0, hm.shape).astype(np.float32))
        dec = decode(hm, off, stride, vote_radius=vote)[0].numpy()
        np.testing.assert_allclose(dec[:, :2], kp[:, :2], atol=1e-3)
        assert (dec[:, 2] > 0.4).all()


def test_decode_votes_are_the_heatmap_weighted_mean_near_the_argmax():
    hm = torch.zeros(1, 1, 6, 5)
    off = torch.zeros(1, 1, 2, 6, 5)
    hm[0, 0, 2, 2], off[0, 0, :, 2, 2] = 0.9, torch.tensor([0.4, 0.0])    # argmax cell votes x = 2.4
    hm[0, 0, 2, 3], off[0, 0, :, 2, 3] = 0.3, torch.tensor([-1.0, 0.5])   # neighbour votes (2.0, 2.5)
    hm[0, 0, 5, 0], off[0, 0, :, 5, 0] = 0.6, torch.tensor([0.0, 0.0])    # far away: not a vote at r = 2
    np.testing.assert_allclose(decode(hm, off, 4)[0, 0].numpy(), [2.4 * 4, 2 * 4, 0.9], atol=1e-5)
    x = (0.9 * 2.4 + 0.3 * 2.0) / 1.2
    y = (0.9 * 2.0 + 0.3 * 2.5) / 1.2
    np.testing.assert_allclose(decode(hm, off, 4, vote_radius=2.0)[0, 0].numpy(), [4 * x, 4 * y, 0.9], atol=1e-5)
    # an all-zero map has no votes: the argmax cell's own offset, no NaN
    assert np.isfinite(decode(torch.zeros(1, 1, 6, 5), off[:, :1], 4, vote_radius=2.0).numpy()).all()


def test_targets_grid_and_weights():
    kp = np.zeros((17, 3))
    kp[0] = [40.0, 64.0, 2]            # exactly on cell (row 8, col 5) of stride 8
    kp[1] = [10.0, 10.0, 0]            # unlabeled
    kp[2] = [-30.0, 50.0, 1]           # labeled but outside the crop: all-zero map, weight 1
    t = encode_targets(kp, (H, W), 8, radius=2.0)
    assert t["heatmaps"].shape == (17, 16, 12) and t["offsets"].shape == (17, 2, 16, 12)
    assert t["heatmaps"][0, 8, 5] == 1 and t["heatmaps"][0].sum() == 13     # disk of radius 2: 13 cells
    np.testing.assert_allclose(t["offsets"][0, :, 8, 5], 0.0)
    np.testing.assert_allclose(t["offsets"][0, :, 8, 7], [-2.0, 0.0])
    assert t["heatmaps"][1].sum() == 0 and t["weights"][1] == 0
    assert t["heatmaps"][2].sum() == 0 and t["weights"][2] == 1
    with pytest.raises(ValueError, match="divisible"):
        encode_targets(kp, (130, 96), 8)


# --------------------------------------------------------------------------------------------------
# flip
# --------------------------------------------------------------------------------------------------
def test_flip_back_swaps_left_and_right():
    lw, rw = COCO_NAMES.index("left_wrist"), COCO_NAMES.index("right_wrist")
    hm = torch.zeros(1, 17, 16, 12)
    off = torch.zeros(1, 17, 2, 16, 12)
    hm[0, lw, 3, 2] = 1.0                  # the flipped crop sees a "left wrist" at column 2
    off[0, lw, 0, 3, 2] = 0.25
    hb, ob = flip_back(hm, off, COCO_FLIP_PERM)
    assert hb[0, rw, 3, 12 - 1 - 2] == 1.0 and hb[0, lw].sum() == 0   # it is the right wrist, mirrored
    assert ob[0, rw, 0, 3, 9] == -0.25                                    # dx changes sign


@pytest.mark.parametrize("stride", [4, 8])
@pytest.mark.parametrize("perm_name", ["coco", "posetrack"])
@pytest.mark.parametrize("vote", [0.0, 2.0])
def test_flip_test_decode_recovers_joints(stride, perm_name, vote):
    perm = layout(perm_name)["flip_perm"]
    rng = np.random.default_rng(1)
    kp = _random_pose(rng)
    hm, off = _as_outputs(encode_targets(kp, (H, W), stride, 2.0))
    hm_f, off_f = _as_outputs(encode_targets(_mirror(kp, W, perm), (H, W), stride, 2.0))
    dec = flip_test_decode(hm, off, hm_f, off_f, stride, perm, vote_radius=vote)[0].numpy()
    np.testing.assert_allclose(dec[:, :2], kp[:, :2], atol=1e-3)
    # a wrong permutation (no swap) puts left joints on right ones: the check above would fail
    wrong = flip_test_decode(hm, off, hm_f, off_f, stride, np.arange(17))[0].numpy()
    assert np.abs(wrong[:, :2] - kp[:, :2]).max() > 5


# --------------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------------
def test_posenet_shapes_and_params():
    from corrtrack.nets.pose import PoseNet, count_parameters

    net = PoseNet(width=0.25)
    out = net(torch.zeros(2, 3, H, W))
    assert net.stride == 8 and len(out["heatmaps"]) == 2 and len(out["offsets"]) == 2
    for hm, off in zip(out["heatmaps"], out["offsets"]):
        assert hm.shape == (2, 17, H // 8, W // 8) and off.shape == (2, 17, 2, H // 8, W // 8)
    up = PoseNet(width=0.25, trunk_stride=16, upsample=1, stage2_input="features+maps")
    assert up.stride == 8 and up(torch.zeros(1, 3, H, W))["heatmaps"][1].shape == (1, 17, 16, 12)
    assert 0.5e6 < count_parameters(net) < 2e6
    with pytest.raises(ValueError):
        PoseNet(stage2_input="nope")


def test_posenet_skip_feeds_stage1_detail_to_both_heads():
    from corrtrack.nets.pose import PoseNet

    torch.manual_seed(0)
    net = PoseNet(width=0.25, trunk_stride=16, upsample=2, head_channels=16, skip=True)
    assert net.stride == 4 and net.skip_names == ["inception_3b", "conv2"]
    assert net.kwargs["skip"] is True and "skip" not in PoseNet(width=0.25).kwargs   # old kwargs unchanged
    rebuilt = PoseNet(**net.kwargs)
    assert rebuilt.state_dict().keys() == net.state_dict().keys()
    for size in [(H, W), (72, 48)]:       # 72 / 16 is not whole: the upsampled map is cut to the skip's
        out = net(torch.randn(2, 3, *size))
        for hm, off in zip(out["heatmaps"], out["offsets"]):
            assert hm.shape == (2, 17, size[0] // 4, size[1] // 4)
            assert off.shape == (2, 17, 2, size[0] // 4, size[1] // 4)
    # the laterals are on the path of both heads' outputs: they receive gradients
    out = net(torch.randn(2, 3, H, W))
    (out["heatmaps"][0].sum() + out["heatmaps"][1].sum()).backward()
    for head in (net.head1, net.head2):
        assert len(head.laterals) == 2
        assert all(m[0].weight.grad is not None and m[0].weight.grad.abs().sum() > 0 for m in head.laterals)
    with pytest.raises(ValueError, match="upsample"):
        PoseNet(width=0.25, trunk_stride=16, upsample=0, skip=True)
    with pytest.raises(ValueError, match="stride 1"):
        PoseNet(width=0.25, trunk_stride=8, upsample=3, skip=True)   # no stage-1 features at stride 1


def test_posenet_head_convs():
    from corrtrack.nets.pose import PoseNet

    plain = PoseNet(width=0.25, trunk_stride=16, upsample=2, head_channels=16, skip=True)
    net = PoseNet(width=0.25, trunk_stride=16, upsample=2, head_channels=16, skip=True, head_convs=2)
    assert net.kwargs["head_convs"] == 2 and "head_convs" not in plain.kwargs
    assert len(net.head1.refine) == 6 and len(plain.head2.refine) == 0        # 2 x (conv, BN, ReLU)
    extra = set(net.state_dict()) - set(plain.state_dict())
    assert extra and all(".refine." in k for k in extra)
    assert set(plain.state_dict()) <= set(net.state_dict())
    out = net(torch.randn(2, 3, H, W))
    assert out["heatmaps"][1].shape == (2, 17, H // 4, W // 4)
    assert out["offsets"][0].shape == (2, 17, 2, H // 4, W // 4)
    coarse = PoseNet(width=0.25, trunk_stride=16, upsample=0, head_convs=1)   # no deconvolution: at stride 16
    assert coarse(torch.zeros(1, 3, H, W))["heatmaps"][0].shape == (1, 17, H // 16, W // 16)


# --------------------------------------------------------------------------------------------------
# inference API
# --------------------------------------------------------------------------------------------------
class OracleNet(nn.Module):
    """Stands in for a perfect pose net: returns the targets of known crop keypoints, in the order the
    crops arrive (the second half of a flip-test batch gets the mirrored targets)."""

    def __init__(self, crop_keypoints: list[np.ndarray], stride: int, perm: np.ndarray, input_size):
        super().__init__()
        self.stride, self.num_joints = stride, 17
        self.queue = list(crop_keypoints)
        self.perm, self.input_size = perm, input_size
        self.flip = False
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        n = x.shape[0]
        flip = self.flip
        k = n // 2 if flip else n
        kps, self.queue = self.queue[:k], self.queue[k:]
        if flip:
            kps = kps + [_mirror(p, self.input_size[1], self.perm) for p in kps]
        ts = [encode_targets(p, self.input_size, self.stride, 2.0) for p in kps]
        hm = torch.from_numpy(np.stack([t["heatmaps"] for t in ts]))
        off = torch.from_numpy(np.stack([t["offsets"] for t in ts]))
        logits = 20.0 * (2 * hm - 1)
        return {"heatmaps": [logits, logits], "offsets": [off, off]}


@pytest.mark.parametrize("flip_test", [False, True])
def test_estimate_returns_image_pixels_that_cocoeval_scores(flip_test):
    from datamodules.sources import ImageRecord
    from corrtrack.evaluation.coco import build_coco_gt, coco_keypoint_eval

    rng = np.random.default_rng(3)
    frames = [np.zeros((240, 320, 3), np.uint8), np.zeros((200, 300, 3), np.uint8)]
    boxes = [np.array([[20, 30, 60, 120], [150, 40, 80, 150.0]]), np.array([[100, 20, 50, 90.0]])]
    gt = []
    for b in boxes:
        poses = np.zeros((len(b), 17, 3))
        for i, box in enumerate(b):
            poses[i, :, 0] = rng.uniform(box[0], box[0] + box[2], 17)
            poses[i, :, 1] = rng.uniform(box[1], box[1] + box[3], 17)
            poses[i, :, 2] = 2
        gt.append(poses)
    size = (H, W)
    crop_kps = []
    for b, poses in zip(boxes, gt):
        for box, p in zip(b, poses):
            m = geometry.crop_affine(box, size, padding=1.25)
            crop_kps.append(geometry.warp_points(p, m))
    net = OracleNet(crop_kps, 8, COCO_FLIP_PERM, size)
    net.flip = flip_test
    est = PoseEstimator(net, input_size=size, flip_test=flip_test, batch_size=2)
    out = est.estimate(frames, boxes)
    assert [o.shape for o in out] == [(2, 17, 3), (1, 17, 3)]
    for o, g in zip(out, gt):
        np.testing.assert_allclose(o[..., :2], g[..., :2], atol=1e-3)
        assert (o[..., 2] > 0.99).all()

    records = [ImageRecord(path=Path(f"{i}.jpg"), width=f.shape[1], height=f.shape[0], image_id=i + 1,
                           keypoints=g.astype(np.float32), boxes=b.astype(np.float32),
                           areas=(b[:, 2] * b[:, 3]).astype(np.float32), layout="coco")
               for i, (f, g, b) in enumerate(zip(frames, gt, boxes))]
    coco_gt = build_coco_gt(records, "coco")
    results = [{"image_id": i + 1, "category_id": 1, "keypoints": p.reshape(-1).tolist(), "score": 1.0}
               for i, o in enumerate(out) for p in o]
    assert coco_keypoint_eval(coco_gt, results, layout("coco")["sigmas"])["ap"] == pytest.approx(1.0)
    shifted = [dict(r, keypoints=(np.asarray(r["keypoints"]) + 15.0).tolist()) for r in results]
    assert coco_keypoint_eval(coco_gt, shifted, layout("coco")["sigmas"])["ap"] < 0.5


def test_estimate_handles_empty_frames_and_posetrack_slots():
    from corrtrack.nets.pose import PoseNet

    est = PoseEstimator(PoseNet(width=0.125), input_size=(64, 48), layout="posetrack", batch_size=4)
    frames = np.zeros((3, 120, 160, 3), np.uint8)
    out = est.estimate(frames, [np.zeros((0, 4)), np.array([[10, 10, 30, 60.0]]), np.zeros((0, 4))])
    assert [o.shape for o in out] == [(0, 17, 3), (1, 17, 3), (0, 17, 3)]
    assert (out[1][0, [3, 4]] == 0).all()                 # unused PoseTrack ear slots
    assert np.isfinite(out[1]).all()
    assert [o.shape for o in est.estimate(frames[:1], [np.zeros((0, 4))])] == [(0, 17, 3)]
    with pytest.raises(ValueError, match="frames"):
        est.estimate(frames, [np.zeros((0, 4))])


# --------------------------------------------------------------------------------------------------
# configs and training stages
# --------------------------------------------------------------------------------------------------
SMALL = ["model.net.width=0.125", "data.input_size=[64,48]", "data.batch_size=2", "data.num_workers=0",
         "logger.wandb=false"]


@pytest.mark.parametrize("stage,preset", [("pose", "debug"), ("pose", "cpu"), ("pose", "paper"),
                                          ("finetune", "debug"), ("finetune", "cpu"), ("finetune", "paper")])
def test_fast_dev_run_every_preset(stage, preset, world_overrides, outputs, tmp_path):
    from experiments.run import main

    extra = SMALL if preset == "paper" else ["data.num_workers=0", "data.batch_size=2"]
    if stage == "finetune":
        extra = extra + ["model.init_ckpt=null"]
    rc = main([stage, preset, "trainer.fast_dev_run=true", *world_overrides, *outputs, *extra])
    assert rc == 0


@pytest.fixture(scope="module")
def trained_pose(tiny_world, tmp_path_factory):
    """A 3-step `pose debug` run on the tiny world (small net) and its output root."""
    from experiments.run import main

    out = tmp_path_factory.mktemp("pose_outputs")
    world = [f"data.synth.root={tiny_world.parent}", "data.synth.preset=tiny", "data.coco_root=synth",
             "data.posetrack_root=synth", f"output_root={out}", *SMALL, "data.val_max_images=3"]
    assert main(["pose", "debug", *world, "run_id=a"]) == 0
    return out, world


def test_debug_run_writes_checkpoint_metrics_and_figure(trained_pose):
    out, _ = trained_pose
    run = out / "pose" / "a"
    summary = json.loads((run / "summary.json").read_text())
    assert "val/coco_ap" in summary["final_metrics"]
    assert 0.0 <= summary["final_metrics"]["val/coco_ap"] <= 1.0
    assert Path(summary["last_checkpoint"]).is_file()
    assert list((run / "figures").glob("pose_val_epoch*.png"))


def test_finetune_from_latest_and_inference_from_checkpoint(trained_pose, tiny_world):
    from experiments.run import main
    from corrtrack.imageio import read_rgb
    from datamodules.sources import load_posetrack_records

    out, world = trained_pose
    assert main(["finetune", "debug", *world, "model.init_ckpt=latest", "run_id=b"]) == 0
    summary = json.loads((out / "finetune" / "b" / "summary.json").read_text())
    ckpt = Path(summary["last_checkpoint"])
    est = PoseEstimator.from_checkpoint(ckpt)
    assert est.layout == "posetrack" and est.input_size == (64, 48)
    rec = load_posetrack_records(tiny_world / "posetrack", "val")[0]
    poses = est.estimate([read_rgb(rec.path)], [rec.boxes])[0]
    assert poses.shape == (len(rec.boxes), 17, 3)
    assert (poses[:, [3, 4]] == 0).all()
    # joints come back in image pixels, around the boxes they were estimated in
    cx = rec.boxes[:, 0] + rec.boxes[:, 2] / 2
    assert np.all(np.abs(np.median(poses[:, :, 0], axis=1) - cx) < rec.boxes[:, 2] * 1.25)
    with pytest.raises(FileNotFoundError):
        PoseEstimator.from_checkpoint(out / "missing.ckpt")

    # tracking code loads the estimator without Lightning or omegaconf
    import subprocess
    import sys

    code = (f"import sys, numpy as np; from corrtrack.pose import PoseEstimator; "
            f"e = PoseEstimator.from_checkpoint({str(ckpt)!r}); "
            f"p = e.estimate([np.zeros((120, 160, 3), np.uint8)], [np.array([[10, 10, 40, 80.0]])]); "
            f"assert p[0].shape == (1, 17, 3); "
            f"bad = [m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning', "
            f"'lightning_fabric', 'omegaconf')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
