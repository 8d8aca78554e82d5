"""Descriptors, batched affinities, loss, propagation, feature cache, checkpoint loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from corrtrack import correspondence as C
from corrtrack.nets import RefinementNet, SiameseNet


def _loop_affinity(f1, f2, kpts, valid):
    """Reference: one descriptor at a time, straight from the definition (eq. 1)."""
    b, c, h, w = f1.shape
    _, p, j, _ = kpts.shape
    pad1 = F.pad(f1, (1, 1, 1, 1))
    out = torch.zeros(b, p, j, h, w)
    for bi in range(b):
        for pi in range(p):
            for ji in range(j):
                x, y = [int(round(float(v))) for v in kpts[bi, pi, ji]]
                if not valid[bi, pi, ji] or not (0 <= x < w and 0 <= y < h):
                    continue
                d = pad1[bi, :, y:y + 3, x:x + 3]
                out[bi, pi, ji] = F.conv2d(f2[bi:bi + 1], d[None], padding=1)[0, 0]
    return out


def test_batched_affinity_equals_per_keypoint_loop():
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(2, 5, 7, 9, generator=g), torch.randn(2, 5, 7, 9, generator=g)
    kpts = torch.rand(2, 3, 4, 2, generator=g) * torch.tensor([11.0, 9.0]) - 1  # some outside the map
    kpts[0, 0, 0] = torch.tensor([0.0, 0.0])       # corner: zero padding
    kpts[1, 2, 3] = torch.tensor([8.0, 6.0])
    valid = torch.rand(2, 3, 4, generator=g) > 0.2
    desc = C.extract_descriptors(f1, kpts, valid)
    assert desc.shape == (2, 3, 4, 5, 3, 3)
    a = C.affinity(desc, f2)
    assert torch.allclose(a, _loop_affinity(f1, f2, kpts, valid), atol=1e-5)


def test_ragged_affinity_maps_equal_padded():
    g = torch.Generator().manual_seed(3)
    f1, f2 = torch.randn(3, 4, 6, 6, generator=g), torch.randn(3, 4, 6, 6, generator=g)
    kpts = torch.rand(7, 2, generator=g) * 5
    bi = torch.tensor([2, 0, 2, 2, 0, 1, 2])
    a = C.affinity_maps(f1, f2, kpts, bi)
    assert a.shape == (7, 6, 6)
    for n in range(7):
        ref = C.affinity(C.extract_descriptors(f1[bi[n]][None], kpts[n].view(1, 1, 1, 2)), f2[bi[n]][None])
        assert torch.allclose(a[n], ref[0, 0, 0], atol=1e-5)
    assert C.affinity_maps(f1, f2, kpts[:0], bi[:0]).shape == (0, 6, 6)


def test_descriptor_patch_layout_and_self_match():
    f = F.normalize(torch.randn(1, 8, 10, 10), dim=1)
    kpts = torch.tensor([[[[4.0, 6.0], [0.0, 9.0]]]])
    d = C.extract_descriptors(f, kpts)
    assert torch.equal(d[0, 0, 0], f[0, :, 5:8, 3:6])
    # (x=0, y=9): rows 8..10 and columns -1..1; row 10 and column -1 fall outside -> zeros
    assert torch.equal(d[0, 0, 1, :, :2, 1:], f[0, :, 8:10, 0:2])
    assert d[0, 0, 1, :, 2].abs().sum() == 0 and d[0, 0, 1, :, :, 0].abs().sum() == 0
    a = C.affinity(d, f)                       # F2 == F1: the maximum sits at the keypoint itself
    am = C.maps_argmax(a[0, 0], subpixel=False)
    assert am[0, :2].tolist() == [4.0, 6.0]


def test_softmax_sums_to_one_and_log_softmax_matches():
    a = torch.randn(2, 3, 17, 8, 8) * 5
    s = C.softmax_maps(a)
    assert torch.allclose(s.sum(dim=(-1, -2)), torch.ones(2, 3, 17))
    assert torch.allclose(C.log_softmax_maps(a).exp(), s, atol=1e-6)


def test_bce_loss_matches_dense_definition():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, 4, 6, 5, generator=g)
    cells = torch.tensor([[[1, 2], [4, 5], [0, 0], [3, 1]], [[2, 2], [9, 9], [1, 1], [0, 5]]])
    inside = torch.tensor([[True, True, False, True], [True, False, True, True]])
    qv = torch.tensor([[True, True, True, False], [True, True, True, True]])
    gt = torch.zeros(2, 4, 6, 5)
    for i in range(2):
        for k in range(4):
            if inside[i, k]:
                gt[i, k, cells[i, k, 1], cells[i, k, 0]] = 1
    s = C.softmax_maps(a)
    dense = F.binary_cross_entropy(s, gt, reduction="none").sum((-1, -2))
    ref = dense[qv].mean()
    assert torch.allclose(C.correspondence_bce(C.log_softmax_maps(a), cells, inside, qv, "log_prob"), ref, atol=1e-4)
    assert torch.allclose(C.correspondence_bce(s, cells, inside, qv, "prob"), ref, atol=1e-4)
    dense_l = F.binary_cross_entropy_with_logits(a, gt, reduction="none").sum((-1, -2))
    assert torch.allclose(C.correspondence_bce(a, cells, inside, qv, "logit"), dense_l[qv].mean(), atol=1e-4)


def test_index_to_cells_inverts_flat_indices():
    idx = torch.tensor([[0, 5, 17, -1]])
    np.testing.assert_array_equal(C.index_to_cells(idx, 8).numpy(), [[[0, 0], [5, 0], [1, 2], [0, 0]]])


def test_target_cells_inside():
    cells, inside = C.target_cells(torch.tensor([[5.9, 2.1], [-3.0, 4.0], [63.0, 63.0]]), (16, 16), stride=4)
    assert cells[0].tolist() == [1, 1] and inside.tolist() == [True, False, False]


def test_propagate_identical_frames_returns_same_positions():
    # hand-made features: a distinct random unit vector per cell, identical frames
    torch.manual_seed(0)
    f = F.normalize(torch.randn(1, 16, 16, 16), dim=1)
    affine = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])       # image (128 px) -> input (64 px)
    poses = np.array([[[40.0, 24.0, 1], [8.0, 120.0, 2], [0, 0, 0]]])   # (1, 3, 3) image pixels
    res = C.propagate(f, f, poses, affine, affine, subpixel=False)
    assert res.points.shape == (1, 3, 3)
    np.testing.assert_allclose(res.points[0, :2, :2], poses[0, :2, :2])
    assert (res.points[0, :2, 2] > 0.5).all() and res.points[0, 2].tolist() == [0, 0, 0]
    # a shifted frame b: features moved 2 cells right -> positions move 2 * 4 / 0.5 = 16 image px
    fb = torch.roll(f, shifts=2, dims=-1)
    res = C.propagate(f, fb, poses[:, :1], affine, affine, subpixel=False)
    np.testing.assert_allclose(res.points[0, 0, :2], [56.0, 24.0])


def test_sample_maps_lookup():
    maps = torch.zeros(2, 3, 8, 8)
    maps[1, 2, 5, 4] = 0.7
    pts = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [4.2, 4.8]], [[0.0, 0.0], [0, 0], [20.0, 1.0]]])
    v = C.sample_maps(maps, pts)
    assert v.shape == (2, 2, 3) and v[1, 0, 2] == pytest.approx(0.7) and v[1, 1, 2] == 0


def test_feature_cache_lru():
    cache = C.FeatureCache(2)
    calls = []
    for key in [0, 1, 1, 2, 0, 2]:
        cache.get(key, lambda k=key: calls.append(k) or k)
    assert calls == [0, 1, 2, 0] and cache.hits == 2 and len(cache) == 2


def test_correspondence_model_each_frame_once():
    model = C.CorrespondenceModel(SiameseNet("release", width=0.125), RefinementNet(width=0.125),
                                  input_size=64)
    counter = {"n": 0}
    orig = model.siamese.forward

    def counting(x):
        counter["n"] += 1
        return orig(x)
    model.siamese.forward = counting
    frames = [np.random.default_rng(i).integers(0, 255, (48, 80, 3), dtype=np.uint8) for i in range(3)]
    poses = np.array([[[10.0, 20.0, 1]] * 17, [[30.0, 5.0, 1]] * 17])
    for f in range(1, 3):
        pts, maps = model.propagate(frames[f - 1], frames[f], poses, key_a=f - 1, key_b=f)
        assert pts.shape == (2, 17, 3) and maps.shape == (2, 17, 16, 16)
        assert ((maps >= 0) & (maps <= 1)).all()
    assert counter["n"] == 3            # frame 1 computed once for (0, 1) and (1, 2)
    vals = model.lookup(maps, poses, frames[2])
    assert vals.shape == (2, 2, 17)


def test_load_correspondence_checkpoint(tmp_path):
    sia, ref = SiameseNet("release", width=0.125), RefinementNet(width=0.125, variant="dilated")
    state = {**{f"siamese.{k}": v for k, v in sia.state_dict().items()},
             **{f"refinement.{k}": v for k, v in ref.state_dict().items()}}
    ckpt = {"state_dict": state, "epoch": 3, "global_step": 7,
            "hyper_parameters": {"net": {"siamese": sia.config(), "refinement": ref.config()}}}
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    model = C.load_correspondence_checkpoint(run, input_size=64)
    assert model.refinement is not None and model.refinement.variant == "dilated"
    assert torch.equal(model.siamese.backbone.blocks.conv1.conv.weight, sia.backbone.blocks.conv1.conv.weight)
    assert model.info["epoch"] == 3
    with pytest.raises(ValueError, match="net"):
        torch.save({"state_dict": state, "hyper_parameters": {}}, tmp_path / "bad.ckpt")
        C.load_correspondence_checkpoint(tmp_path / "bad.ckpt")


def test_bilinear_descriptors_equal_nearest_on_cells_and_interpolate_between():
    g = torch.Generator().manual_seed(5)
    f = torch.randn(2, 6, 9, 11, generator=g)
    on_cells = torch.tensor([[[[3.0, 4.0], [0.0, 8.0]]], [[[10.0, 0.0], [5.0, 5.0]]]])   # (2, 1, 2, 2)
    valid = torch.tensor([[[True, True]], [[True, False]]])
    near = C.extract_descriptors(f, on_cells, valid, "nearest")
    bil = C.extract_descriptors(f, on_cells, valid, "bilinear")
    assert torch.allclose(near, bil, atol=1e-5)               # zero padding outside the map included
    # halfway between two cells: the mean of the two nearest-cell patches
    half = torch.tensor([[[[3.5, 4.0]]]])
    left = C.extract_descriptors(f[:1], torch.tensor([[[[3.0, 4.0]]]]))
    right = C.extract_descriptors(f[:1], torch.tensor([[[[4.0, 4.0]]]]))
    assert torch.allclose(C.extract_descriptors(f[:1], half, sampling="bilinear"), (left + right) / 2, atol=1e-5)
    # gradients reach the features around the point (training uses this path)
    fr = f[:1].clone().requires_grad_(True)
    C.extract_descriptors(fr, half, sampling="bilinear").sum().backward()
    assert fr.grad[0, :, 3:6, 2:6].abs().sum() > 0 and fr.grad[0, :, 0].abs().sum() == 0
    with pytest.raises(ValueError, match="sampling"):
        C.extract_descriptors(f, on_cells, sampling="cubic")


def test_soft_subpixel_decoding_follows_the_neighbour_balance():
    m = torch.zeros(1, 7, 7)
    m[0, 3, 3], m[0, 3, 4] = 1.0, 1.0 - 1e-6   # two equal neighbours: the peak lies between them
    x, y, v = C.maps_argmax(m, subpixel="soft")[0].tolist()
    assert abs(x - 3.5) < 1e-3 and abs(y - 3.0) < 1e-6 and v == 1.0
    m2 = torch.zeros(1, 7, 7)
    m2[0, 2, 5] = 0.9                           # isolated peak: exactly its cell
    assert C.maps_argmax(m2, subpixel="soft")[0, :2].tolist() == [5.0, 2.0]
    m3 = torch.zeros(1, 7, 7)
    m3[0, 0, 0], m3[0, 1, 0] = 1.0, 0.5         # at the border: cells outside weigh nothing
    x, y, _ = C.maps_argmax(m3, subpixel="soft")[0].tolist()
    assert x == 0.0 and abs(y - 0.25 / 1.25) < 1e-6
    assert C.maps_argmax(m3, subpixel="quarter")[0, :2].tolist() == [0.0, 0.0]   # no neighbour pair: no shift
    assert C.maps_argmax(m[:, 1:, :], subpixel="quarter")[0, :2].tolist() == [3.25, 2.0]
    with pytest.raises(ValueError, match="subpixel"):
        C.maps_argmax(m3, subpixel="gauss")


def test_siamese_net_carries_its_descriptor_sampling(tmp_path):
    net = SiameseNet("paper", width=0.125, descriptor="bilinear")
    assert net.config()["descriptor"] == "bilinear"
    assert SiameseNet(**net.config()).descriptor == "bilinear"
    assert SiameseNet("paper", width=0.125).descriptor == "nearest"   # older checkpoints: as trained
    with pytest.raises(ValueError, match="descriptor"):
        SiameseNet("paper", width=0.125, descriptor="cubic")


def test_residual_refinement_starts_from_the_siamese_maps():
    """Untrained, a residual refinement returns sigmoid(log S) = S / (1 + S): the Siamese argmax; after
    one optimiser step its maps differ from that (the body is trainable)."""
    torch.manual_seed(0)
    net = RefinementNet(width=0.125, in_channels=2 * 8 + 17, residual=True)
    f1, f2 = torch.randn(2, 8, 16, 16), torch.randn(2, 8, 16, 16)
    s = C.softmax_maps(torch.randn(2, 3, 17, 16, 16) * 3)
    c = torch.sigmoid(net(f1, f2, s))
    torch.testing.assert_close(c, s / (1 + s), rtol=1e-4, atol=1e-6)
    assert torch.equal(C.maps_argmax(c, subpixel=False)[..., :2], C.maps_argmax(s, subpixel=False)[..., :2])
    assert net.config()["residual"] and not RefinementNet(width=0.125).residual
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(f1, f2, s).square().mean().backward()
    opt.step()
    assert not torch.allclose(torch.sigmoid(net(f1, f2, s)), c)
