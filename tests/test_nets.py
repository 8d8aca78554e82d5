"""BN-Inception trunk, Siamese and refinement networks: shapes, strides, normalisation, counters."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from corrtrack.nets import (BNInception, RefinementNet, SiameseNet, count_flops, count_parameters,
                            load_pretrained)
from corrtrack.nets.bninception import convert_caffe_state_dict

W = 0.125  # tiny widths keep these tests fast on 2 CPU cores


@pytest.mark.parametrize("first,last,cin,stride,out_ch", [
    (1, 17, 3, 32, 1056), (1, 21, 3, 32, 1024), (3, 17, 64, 8, 1056), (1, 3, 3, 4, 192), (1, 15, 3, 16, 608),
])
def test_trunk_extent_channels_and_stride(first, last, cin, stride, out_ch):
    m = BNInception(first, last)  # full width: channel table of the Caffe model
    assert m.in_channels == cin and m.stride == stride and m.out_channels == out_ch
    t = BNInception(first, last, width=W)
    x = torch.randn(1, t.in_channels, 64, 64)
    y = t(x)
    assert y.shape == (1, t.out_channels, 64 // stride, 64 // stride)


def test_trunk_any_in_channels_and_keep_stride():
    m = BNInception(3, 17, in_channels=81, width=W, keep_stride=1)
    assert m.stride == 1
    assert m(torch.randn(2, 81, 16, 16)).shape == (2, m.out_channels, 16, 16)
    m4 = BNInception(1, 17, width=W, keep_stride=4)
    assert m4.stride == 4 and m4(torch.randn(1, 3, 64, 96)).shape[-2:] == (16, 24)
    # dilation keeps the weights' shapes: same parameter count as the strided trunk
    assert count_parameters(m4) == count_parameters(BNInception(1, 17, width=W))
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(1, 80, 16, 16))


def test_trunk_bad_layer_numbers():
    with pytest.raises(ValueError, match="first=5"):
        BNInception(5, 17)
    with pytest.raises(ValueError, match="last=16"):
        BNInception(1, 16)


def test_trunk_return_features():
    m = BNInception(1, 21, width=W)
    f = m(torch.randn(1, 3, 64, 64), return_features=True)
    assert f["inception_4d"].shape[1] == m.feature_channels["inception_4d"]
    assert f["inception_4d"].shape[-1] == 64 // m.feature_strides["inception_4d"] == 4
    assert torch.equal(f["out"], f["inception_5b"])
    assert "pool1" not in f


def test_parameter_count_of_full_body_matches_bninception():
    # BN-Inception without its 1000-way classifier: 10.27 M parameters (Caffe model, conv biases)
    assert abs(count_parameters(BNInception(1, 21)) / 1e6 - 10.27) < 0.01


def test_count_flops_known_answer():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 10))
    expected = 8 * 4 * 4 * 3 * 9 + 8 * 4 * 4 * 2 * 2 * 4 + 256 * 10
    assert count_flops(net, (1, 3, 4, 4)) == expected


@pytest.mark.parametrize("variant", ["paper", "release"])
def test_siamese_stride4_unit_norm(variant):
    net = SiameseNet(variant, width=W)
    x = torch.randn(2, 3, 64, 96)
    f = net(x)
    assert f.shape == (2, 32, 16, 24)
    assert torch.allclose(f.norm(dim=1), torch.ones(2, 16, 24), atol=1e-4)
    f1, f2 = net.forward_pair(x[:1], x[1:])
    assert f1.shape == f2.shape == (1, 32, 16, 24)
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.randn(1, 3, 60, 64))


def test_siamese_squared_normalisation():
    net = SiameseNet("release", width=W, normalize="squared").eval()
    x = torch.randn(1, 3, 64, 64)
    raw = net.raw_features(x)
    f = net(x)
    # f = raw / |raw|^2  =>  |f| * |raw| = 1
    assert torch.allclose(f.norm(dim=1) * raw.norm(dim=1), torch.ones(1, 16, 16), atol=1e-3)


@pytest.mark.parametrize("variant", ["decoder", "dilated"])
def test_refinement_keeps_resolution_and_batches_persons(variant):
    net = RefinementNet(width=W, variant=variant).eval()
    f1, f2 = torch.randn(2, 32, 16, 16), torch.randn(2, 32, 16, 16)
    s = torch.rand(2, 3, 17, 16, 16)
    c = net(f1, f2, s)
    assert c.shape == (2, 3, 17, 16, 16)
    # ragged form: person n belongs to image batch_index[n]; same numbers as the padded form
    flat = net(f1, f2, s[1], batch_index=torch.tensor([1, 1, 1]))
    assert torch.allclose(flat, c[1], atol=1e-5)
    assert net(f1, f2, s[:, :0]).shape == (2, 0, 17, 16, 16)


def test_load_pretrained_local_and_caffe_names(tmp_path):
    a, b = BNInception(1, 17, width=W), BNInception(1, 17, width=W)
    torch.save(a.state_dict(), tmp_path / "w.pth")
    report = load_pretrained(b, tmp_path / "w.pth")
    assert not report["missing"] and torch.equal(a.blocks.conv1.conv.weight, b.blocks.conv1.conv.weight)
    # a Caffe-style state dict (the usual ImageNet port) maps onto our names
    caffe = {"conv1_7x7_s2.weight": a.blocks.conv1.conv.weight, "conv1_7x7_s2_bn.running_mean":
             a.blocks.conv1.bn.running_mean, "inception_3a_double_3x3_1.weight":
             a.blocks.inception_3a._modules["double_3x3_1"].conv.weight, "last_linear.weight": torch.zeros(3)}
    conv = convert_caffe_state_dict(caffe)
    assert set(conv) == {"blocks.conv1.conv.weight", "blocks.conv1.bn.running_mean",
                         "blocks.inception_3a.double_3x3_1.conv.weight"}
    assert set(conv) <= set(a.state_dict())
    sia = SiameseNet("paper", width=W)
    torch.save(caffe, tmp_path / "caffe.pth")
    rep = load_pretrained(sia, tmp_path / "caffe.pth")
    assert "backbone.blocks.conv1.conv.weight" in rep["loaded"]
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_pretrained(sia, tmp_path / "nope.pth")
