"""Person re-ID: nets and BNNeck, triplet loss, retrieval metrics, the P x K sampler, the crop
DataModule, the training stage and the Lightning-free embedder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from corrtrack.nets.reid import (BNInceptionReID, ResNet50ReID, build_reid_net,
                                 convert_resnet50_state_dict)
from corrtrack.reid import ReIDEmbedder, crop_persons, load_resnet50_weights, retrieval_metrics
from datamodules.reid import PKSampler, ReIDDataModule, holdout_videos, random_erase
from lightning_modules.reid import batch_hard_triplet_loss, reid_validation_metrics, warmup_multistep

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("last_stride,stride", [(1, 16), (2, 32)])
def test_bninception_reid_shapes(last_stride, stride):
    net = BNInceptionReID(num_classes=5, width=0.125, last_stride=last_stride)
    assert net.stride == stride and net.out_dim == 128          # 1024 x 0.125
    x = torch.randn(4, 3, 128, 64)
    assert net.trunk_forward(x).shape == (4, 128, 128 // stride, 64 // stride)
    out = net(x)
    assert out["features"].shape == (4, 128) and out["embeddings"].shape == (4, 128)
    assert out["logits"].shape == (4, 5)
    assert BNInceptionReID(num_classes=0, width=0.125)(x)["logits"] is None
    assert build_reid_net(**net.kwargs).kwargs == net.kwargs


def test_resnet50_reid_shapes_and_last_stride():
    net = ResNet50ReID(num_classes=3, last_stride=1)
    x = torch.randn(2, 3, 64, 32)
    assert net.trunk_forward(x).shape == (2, 2048, 4, 2)     # stride 16
    out = net(x)
    assert out["embeddings"].shape == (2, 2048) and out["logits"].shape == (2, 3)
    assert not any(k.startswith("base.fc") for k in net.state_dict())
    assert ResNet50ReID(last_stride=2).trunk_forward(x).shape == (2, 2048, 2, 1)


def test_bnneck_features_before_and_embeddings_after_batchnorm():
    torch.manual_seed(0)
    net = BNInceptionReID(num_classes=4, width=0.125)
    bn = net.neck.bottleneck
    assert not bn.bias.requires_grad and bn.weight.requires_grad
    x = torch.randn(6, 3, 64, 32)
    net.train()
    out = net(x)
    f, e = out["features"], out["embeddings"]
    # train mode: the embeddings are the features normalised with the batch's statistics
    expect = (f - f.mean(0)) / torch.sqrt(f.var(0, unbiased=False) + bn.eps)
    assert torch.allclose(e, expect, atol=1e-4)
    assert torch.allclose(out["logits"], e @ net.neck.classifier.weight.T, atol=1e-6)
    # eval mode: running statistics; embed() is the embeddings output
    net.eval()
    with torch.no_grad():
        out = net(x)
        expect = (out["features"] - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
        assert torch.allclose(out["embeddings"], expect, atol=1e-4)
        assert torch.allclose(net.embed(x), out["embeddings"])
    # the BN shift stays at zero through training (it is not a parameter the optimiser sees)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.1, weight_decay=0.1)
    net.train()
    for _ in range(2):
        opt.zero_grad()
        net(x)["logits"].sum().backward()
        opt.step()
    assert torch.count_nonzero(bn.bias) == 0


def test_resnet50_weights_of_other_layouts_load_to_the_same_net(tmp_path):
    torch.manual_seed(0)
    src = ResNet50ReID(num_classes=7).eval()
    with torch.no_grad():   # non-trivial BNNeck statistics, so that a missed neck would show
        src.neck.bottleneck.running_mean.uniform_(0, 1)
        src.neck.bottleneck.running_var.uniform_(0.5, 2)
    state = src.state_dict()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        want = src.embed(x)
    strong = {k.removeprefix("neck."): v for k, v in state.items()}                 # base.*, bottleneck.*
    fast = {("backbone." + k[5:] if k.startswith("base.") else k.replace("neck.bottleneck.", "heads.bottleneck.0.")): v
            for k, v in state.items() if not k.startswith("neck.classifier")}
    dp = {"module." + k: v for k, v in strong.items()}
    for layout in (state, strong, fast, dp):
        net = ResNet50ReID(num_classes=0).eval()
        res = load_resnet50_weights(net, layout)
        assert not [k for k in res["missing"] if not k.endswith("num_batches_tracked")]
        with torch.no_grad():
            assert torch.allclose(net.embed(x), want, atol=1e-5)
    # a plain torchvision ResNet-50: trunk loaded, fc dropped, the BNNeck starts as the identity
    import torchvision

    tv = torchvision.models.resnet50(weights=None).state_dict()
    assert "base.fc.weight" not in convert_resnet50_state_dict(tv)
    path = tmp_path / "resnet50.pth"
    torch.save(tv, path)
    emb = ReIDEmbedder.from_resnet50_weights(path, input_size=(64, 32))
    assert emb.dim == 2048 and torch.equal(emb.net.base.conv1.weight, tv["conv1.weight"])
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth: not a ResNet-50"):
        ReIDEmbedder.from_resnet50_weights(tmp_path / "bad.pth")


# --------------------------------------------------------------------------------------------------
# losses, schedule and metrics with known answers
# --------------------------------------------------------------------------------------------------
def test_batch_hard_triplet_loss_known_answer():
    f = torch.tensor([[0.0], [2.0], [2.5], [5.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    # anchor: (hardest positive, hardest negative) = (2, 2.5), (2, 0.5), (2.5, 0.5), (2.5, 3)
    loss, d_ap, d_an = batch_hard_triplet_loss(f, labels, margin=1.0)
    assert torch.allclose(d_ap, torch.tensor([2.0, 2.0, 2.5, 2.5]), atol=1e-5)
    assert torch.allclose(d_an, torch.tensor([2.5, 0.5, 0.5, 3.0]), atol=1e-5)
    assert loss.item() == pytest.approx((0.5 + 2.5 + 3.0 + 0.5) / 4, abs=1e-5)
    loss03, _, _ = batch_hard_triplet_loss(f, labels, margin=0.3)
    assert loss03.item() == pytest.approx((0.0 + 1.8 + 2.3 + 0.0) / 4, abs=1e-5)
    loss.backward()
    assert torch.isfinite(f.grad).all()
    # identical points (distance 0) keep a finite gradient; an anchor without a positive is skipped
    g = torch.zeros(3, 2, requires_grad=True)
    lz, d_ap, _ = batch_hard_triplet_loss(g, torch.tensor([0, 0, 1]), margin=0.3)
    lz.backward()
    assert lz.item() == pytest.approx(0.3, abs=1e-5) and torch.isfinite(g.grad).all()
    assert torch.isnan(d_ap[2])


def test_retrieval_metrics_known_answer():
    g_ids = np.array([0, 1, 0, 1])
    q_ids = np.array([0, 1, 2])
    dist = np.array([[0.1, 0.2, 0.3, 0.05],     # order g3(1) g0(0) g1(1) g2(0): AP (1/2 + 2/4) / 2
                     [0.5, 0.1, 0.2, 0.05],     # g1 ignored -> g3(1) g2 g0: rank-1 hit, AP 1
                     [0.1, 0.1, 0.1, 0.1]])     # identity 2 has no gallery entry: not scored
    ignore = np.zeros_like(dist, bool)
    ignore[1, 1] = True
    m = retrieval_metrics(dist, q_ids, g_ids, ignore)
    assert m["num_queries"] == 2
    assert m["rank1"] == pytest.approx(0.5)
    assert m["map"] == pytest.approx((0.5 + 1.0) / 2)
    # without the ignore mask query 1 first finds g3 (0.05) too, then g1: AP 1 as well
    m2 = retrieval_metrics(dist, q_ids, g_ids)
    assert m2["map"] == pytest.approx(0.75)
    # ignoring every positive of a query removes it from the scores
    ignore[0, [0, 2]] = True
    assert retrieval_metrics(dist, q_ids, g_ids, ignore)["num_queries"] == 1


def test_validation_metrics_ignore_the_query_frame_and_split_galleries():
    # two videos; identity 0 and 1 in video 0 (frames 1, 2), identity 2 in video 1 (frames 1, 2)
    labels = np.array([0, 1, 0, 1, 2, 2])
    videos = np.array([0, 0, 0, 0, 1, 1])
    frames = np.array([1, 1, 2, 2, 1, 2])
    e = np.eye(3, dtype=np.float32)[labels]                 # perfect embeddings: one axis per identity
    m = reid_validation_metrics(e, labels, videos, frames)
    assert m["rank1"] == 1.0 and m["map"] == 1.0 and m["map_video"] == 1.0 and m["num_queries"] == 6
    # identity 2 looks like identity 0: across videos it gets confused, within its video it does not
    e2 = e.copy()
    e2[4:] = e[0]
    m = reid_validation_metrics(e2, labels, videos, frames)
    assert m["map_video"] == 1.0 and m["map"] < 1.0


def test_warmup_then_step_schedule():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_multistep(opt, lambda: None, warmup_epochs=1.0, warmup_factor=0.1, milestones=[0],
                             gamma=0.5)
    factor = sched.lr_lambdas[0]
    assert factor(0) == pytest.approx(0.1 * 0.5)           # no trainer: epoch 0 >= milestone 0
    assert factor(50) == pytest.approx(0.55 * 0.5)         # half-way through a 100-step epoch
    assert factor(200) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------------
# sampler and data
# --------------------------------------------------------------------------------------------------
def test_pk_sampler_composition_determinism_and_ranks():
    counts = [6, 5, 4, 3, 2, 8, 7, 4, 1]                    # identity 8 has one crop: sampled with replacement
    labels = np.repeat(np.arange(len(counts)), counts)
    p, k = 4, 4
    s = PKSampler(labels, p, k, seed=3)
    assert s.batch_size == 16 and s.num_batches == 2 and len(s) == 32
    batches = s.batches(0)
    for b in batches:
        ids, n = np.unique(labels[b], return_counts=True)
        assert len(ids) == p and (n == k).all()
        for i in ids:                                       # without replacement when there are enough
            idx = b[labels[b] == i]
            assert len(np.unique(idx)) == min(k, counts[i])
    used = np.concatenate([np.unique(labels[b]) for b in batches])
    assert len(np.unique(used)) == len(used)                # an identity at most once per epoch
    assert all((a == b).all() for a, b in zip(batches, PKSampler(labels, p, k, seed=3).batches(0)))
    assert any((a != b).any() for a, b in zip(batches, s.batches(1)))
    s.set_epoch(1)
    assert [i for _, i in s] == np.concatenate(s.batches(1)).tolist() and {e for e, _ in s} == {1}
    s.start_at(1, 1)                                        # resumed after one batch of epoch 1
    assert [i for _, i in s] == s.batches(1)[1].tolist()
    assert len(list(s)) == len(s)                           # only the first pass skips
    # two ranks share the epoch's batches without overlap, the same count each
    r0, r1 = (PKSampler(labels, 2, k, seed=3, rank=r, world_size=2).batches(0) for r in (0, 1))
    assert len(r0) == len(r1) == 2
    whole = PKSampler(labels, 2, k, seed=3).batches(0)
    assert all((a == b).all() for a, b in zip(r0 + r1, whole[0::2][:2] + whole[1::2][:2]))
    with pytest.raises(ValueError, match="at least 2 identities"):
        PKSampler(np.zeros(5, int), 2, 2)


def test_holdout_videos_fixed_share():
    names = [f"{i:06d}" for i in range(96)]
    held = holdout_videos(names[::-1], 0.1)
    assert len(held) == 10 and held[0] == "000000" and held[-1] == "000095"
    assert holdout_videos(["a", "b"], 0.1) == ["a"]
    assert holdout_videos(names, 0.0) == []
    with pytest.raises(ValueError, match="at least 2 training videos"):
        holdout_videos(["a"], 0.5)


def test_random_erase_fills_a_rectangle_with_the_mean_colour():
    crop = np.full((64, 32, 3), 7, np.uint8)
    assert random_erase(crop, np.random.default_rng(0), area=(0.1, 0.1), aspect=(1.0, 1.0))
    changed = (crop != 7).any(-1)
    ys, xs = np.nonzero(changed)
    assert changed.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)      # one solid rectangle
    assert abs(changed.sum() - 0.1 * 64 * 32) < 20


def _data_cfg(tiny_world, **kw):
    from omegaconf import OmegaConf

    from experiments.config import load_config

    cfg = load_config("reid", ["debug"], [f"data.synth.root={tiny_world.parent}", "data.synth.preset=tiny",
                                          "data.posetrack_root=synth", "data.input_size=[64,32]",
                                          *[f"data.{k}={v}" for k, v in kw.items()]])
    return OmegaConf.create(OmegaConf.to_container(cfg.data))


def test_datamodule_holds_out_whole_videos(tiny_world):
    dm = ReIDDataModule(_data_cfg(tiny_world, instances=2), seed=0)
    dm.setup("fit")
    tr, va = dm.train_set, dm.val_set
    assert dm.val_videos and not set(dm.val_videos) & set(tr.videos)
    assert set(va.videos) == set(dm.val_videos)
    assert not set(tr.identities) & set(va.identities)      # held-out identities are never trained on
    assert dm.num_classes == tr.num_identities >= 2
    assert tr.labels.min() == 0 and tr.labels.max() == dm.num_classes - 1
    sample = va[0]
    assert sample["image"].shape == (3, 64, 32) and sample["image"].dtype == np.float32
    # validation crops are exactly the inference crops
    c = va.crops[0]
    from corrtrack.nets.utils import normalize_images
    from corrtrack.imageio import read_rgb as read_image

    want = normalize_images(crop_persons(read_image(va.records[c.record].path), c.box[None], (64, 32), 1.1))
    assert np.array_equal(sample["image"], want[0].numpy())
    batch = next(iter(dm.train_dataloader()))
    labels = batch["label"].numpy()
    assert batch["image"].shape == (len(labels), 3, 64, 32)
    ids, n = np.unique(labels, return_counts=True)
    assert (n == 2).all() and len(ids) == min(2, dm.num_classes)
    # the val split's videos instead of held-out training videos
    dm2 = ReIDDataModule(_data_cfg(tiny_world, val_split="val"), seed=0)
    dm2.setup("fit")
    assert set(dm2.val_videos) == {f.stem for f in (tiny_world / "posetrack" / "annotations" / "val").glob("*.json")}
    assert dm2.num_classes > dm.num_classes                 # every training video is trained on


# --------------------------------------------------------------------------------------------------
# stage, presets, checkpoint round trip
# --------------------------------------------------------------------------------------------------
SMALL = ["model.net.width=0.125", "data.input_size=[64,32]", "data.batch_size=2", "data.instances=2",
         "data.num_workers=0", "data.val_batch_size=16", "logger.wandb=false"]


@pytest.mark.parametrize("preset", ["debug", "cpu", "paper"])
def test_fast_dev_run_every_preset(preset, world_overrides, outputs):
    from experiments.run import main

    extra = SMALL if preset != "paper" else [s for s in SMALL if "width" not in s]
    assert main(["reid", preset, "trainer.fast_dev_run=true", *world_overrides, *outputs, *extra]) == 0


@pytest.fixture(scope="module")
def trained_reid(tiny_world, tmp_path_factory):
    from experiments.run import main

    out = tmp_path_factory.mktemp("reid_outputs")
    world = [f"data.synth.root={tiny_world.parent}", "data.synth.preset=tiny", "data.posetrack_root=synth",
             f"output_root={out}", *SMALL]
    assert main(["reid", "debug", *world, "run_id=a"]) == 0
    return out / "reid" / "a"


def test_checkpoint_round_trip_gives_the_module_embeddings(trained_reid, tiny_world):
    from lightning_modules.reid import ReIDModule

    summary = json.loads((trained_reid / "summary.json").read_text())
    for key in ("val/reid_rank1", "val/reid_map"):
        assert 0.0 <= summary["final_metrics"][key] <= 1.0
    ckpt = Path(summary["last_checkpoint"])
    hp = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hp["stage"] == "reid" and hp["net"]["arch"] == "bninception" and hp["net"]["num_classes"] >= 2

    module = ReIDModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    emb = ReIDEmbedder.from_checkpoint(ckpt)
    assert ReIDEmbedder.from_checkpoint(trained_reid).dim == 128           # a run folder: its best checkpoint
    assert emb.input_size == (64, 32) and emb.padding == pytest.approx(1.1) and emb.dim == 128
    assert emb.net.num_classes == 0                           # the identity classifier is not kept
    dm = ReIDDataModule(_data_cfg(tiny_world), seed=0)
    dm.setup("fit")
    va = dm.val_set
    r = va.crops[0].record
    idx = [i for i, c in enumerate(va.crops) if c.record == r]
    from corrtrack.imageio import read_rgb as read_image

    got = emb.embed(read_image(va.records[r].path), np.stack([va.crops[i].box for i in idx]))
    x = torch.from_numpy(np.stack([va[i]["image"] for i in idx]))
    want = module.embed(x).numpy()
    assert got.shape == want.shape == (len(idx), 128) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.allclose(got, want, atol=1e-4)
    assert emb.embed(np.zeros((50, 60, 3), np.uint8), np.zeros((0, 4))).shape == (0, 128)
    assert np.allclose(ReIDEmbedder.load(ckpt).embed_crops(emb.crops(read_image(va.records[r].path),
                                                                     va.crops[idx[0]].box[None])),
                       got[:1], atol=1e-5)

    # no Lightning / omegaconf needed to load it
    code = (f"import sys, numpy as np; from corrtrack.reid import ReIDEmbedder; "
            f"e = ReIDEmbedder.from_checkpoint({str(ckpt)!r}); "
            f"x = e.embed(np.zeros((120, 160, 3), np.uint8), np.array([[10, 10, 40, 80.0]])); "
            f"assert x.shape == (1, 128); "
            f"bad = [m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning', "
            f"'lightning_fabric', 'omegaconf')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_from_checkpoint_rejects_other_stages_and_files(tmp_path):
    pose = tmp_path / "pose.ckpt"
    torch.save({"hyper_parameters": {"stage": "finetune", "net": {}}, "state_dict": {}}, pose)
    with pytest.raises(ValueError, match=r"pose.ckpt is a 'finetune' checkpoint; a 'reid' checkpoint is needed"):
        ReIDEmbedder.from_checkpoint(pose)
    with pytest.raises(ValueError, match=r"pose.ckpt is a 'finetune' checkpoint"):
        ReIDEmbedder.load(pose)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.ckpt: cannot read"):
        ReIDEmbedder.from_checkpoint(junk)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        ReIDEmbedder.from_checkpoint(tmp_path / "missing.ckpt")
