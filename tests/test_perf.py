"""GPU-efficiency tooling that runs without a GPU: model FLOPs and MFU, the host-sync counter and the
sync-free training steps, the training-throughput benchmark and the `--cpu-smoke` path of
experiments/gpu_check.sh."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from corrtrack.bench.flops import forward_flops, peak_tflops, training_flops, utilisation
from corrtrack.bench.syncs import HostSyncCounter
from corrtrack.bench.throughput import PAPER, stage_flops, train_throughput

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_forward_flops_counts_two_per_mac_on_meta():
    conv = torch.nn.Conv2d(8, 16, 3, padding=1).to("meta")
    x = torch.empty(2, 8, 10, 12, device="meta")
    assert forward_flops(lambda: conv(x)) == 2 * (2 * 16 * 10 * 12) * (8 * 9)
    assert training_flops(10, 4) == 34


def test_siamese_flops_match_the_hook_counter_of_networks_doc():
    """Two images through the net (2 FLOPs per MAC of ``count_flops``, the counter behind docs/networks.md's
    table) plus the affinity of 8 persons x 17 queries: 3x3 x 32-channel correlations over the h x w map."""
    from corrtrack.nets import SiameseNet, count_flops

    macs = count_flops(SiameseNet("paper", width=0.25), (1, 3, 128, 128))
    f = stage_flops("siamese", width=0.25, input_size=128)
    assert f["forward_frozen"] == 0
    affinity = 2 * 8 * 17 * (32 * 9) * (32 * 32)
    assert f["forward_trained"] == pytest.approx(2 * 2 * macs + affinity, rel=1e-3)
    assert f["train"] == 3 * f["forward_trained"]


def test_peak_table_and_mfu():
    assert peak_tflops("NVIDIA H200") == pytest.approx(989.4)
    assert peak_tflops("NVIDIA H100 PCIe") == pytest.approx(756.0)
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == pytest.approx(312.0)
    assert peak_tflops("cpu") is None and peak_tflops(None) is None
    u = utilisation(300e9, 200.0, 989.4)
    assert u["achieved_tflops"] == pytest.approx(60.0) and u["mfu"] == pytest.approx(60.0 / 989.4)
    assert utilisation(300e9, 200.0, None)["mfu"] is None


def test_paper_sizes_follow_the_paper_presets():
    from experiments.config import load_config

    for stage in ("siamese", "refine", "pose", "reid"):
        cfg = load_config(stage, ["paper"], ["model.siamese_ckpt=x"] if stage == "refine" else [])
        size = cfg.data.input_size
        assert tuple(PAPER[stage]["input_size"]) == ((size, size) if isinstance(size, int) else tuple(size))
        bs = int(cfg.data.batch_size) * (int(cfg.data.instances) if stage == "reid" else 1)
        assert PAPER[stage]["batch_size"] == bs
        if stage in ("siamese", "refine"):
            assert PAPER[stage]["persons"] == cfg.data.max_persons


def test_host_sync_counter_sees_item_and_boolean_masks():
    x = torch.arange(6.0)
    with HostSyncCounter() as c:
        y = x * 2                      # no sync
    assert c.total == 0
    with HostSyncCounter() as c:
        float(y.sum())
        _ = y[y > 3]
        if (y > 100).any():
            pass
    ops = {op for op, _ in c.calls}
    assert "_local_scalar_dense" in ops and any(op.startswith("index") for op in ops)
    assert all(where.endswith(".py:" + where.rsplit(":", 1)[1]) for _, where in c.calls)


def _pair_batch(b: int = 2, p: int = 3, s: int = 64, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    h = s // 4
    shape = (b, p, 17)
    xy = torch.rand(*shape, 2, generator=g) * (h - 1)
    present = torch.rand(shape, generator=g) < 0.8
    target = torch.floor(torch.rand(*shape, 2, generator=g) * h)
    return {"image1": torch.randn(b, 3, s, s, generator=g), "image2": torch.randn(b, 3, s, s, generator=g),
            "kpts1": xy, "query_valid": torch.rand(shape, generator=g) < 0.9, "present": present,
            "target_xy": torch.where(present[..., None], target, torch.full_like(target, float("nan"))),
            "target_idx": torch.where(present, (target[..., 1] * h + target[..., 0]).long(), -1)}


def test_siamese_training_step_has_no_host_sync_and_keeps_its_metric():
    from lightning_modules.siamese import SiameseModule, pck_hits

    torch.manual_seed(0)
    m = SiameseModule(net={"siamese": {"width": 0.25, "feat_channels": 16}}, input_size=64).train()
    batch = _pair_batch()
    logged = {}
    m.log = lambda k, v, **kw: logged.__setitem__(k, v)
    with HostSyncCounter() as c:
        m.training_step(batch, 0)
    assert c.total == 0, dict(c.calls)
    # the value the step logged is the mean over the present keypoints, as before
    with torch.no_grad():
        probs = m.maps(batch)["probs"]
    pres = batch["present"]
    old = pck_hits(probs[pres], batch["target_xy"][pres]).float().mean()
    assert logged["train/corr_pck"].item() == pytest.approx(old.item())
    none = dict(batch, present=torch.zeros_like(batch["present"]))
    m.training_step(none, 0)
    assert torch.isnan(logged["train/corr_pck"])


def test_reid_triplet_loss_has_no_host_sync():
    from lightning_modules.reid import batch_hard_triplet_loss

    f = torch.randn(8, 4, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])     # two anchors without a positive
    with HostSyncCounter() as c:
        loss, _, _ = batch_hard_triplet_loss(f, labels)
    assert c.total == 0, dict(c.calls)
    loss.backward()
    assert torch.isfinite(f.grad).all()
    alone = batch_hard_triplet_loss(f, torch.arange(8))[0]   # no anchor has a positive: 0, with a graph
    assert alone.item() == 0.0 and alone.requires_grad


def test_train_throughput_reports_tflops_and_no_mfu_on_cpu():
    r = train_throughput("siamese", device="cpu", steps=1, warmup=1, input_size=64, width=0.25, batch_size=2,
                         persons=2)
    assert r["precision"] == "32" and r["channels_last"] and r["mfu"] is None
    assert r["samples_per_s"] > 0 and r["achieved_tflops"] > 0
    assert r["train_gflops_per_sample"] == pytest.approx(3 * r["forward_gflops_trained"])
    r = train_throughput("refine", device="cpu", steps=1, warmup=1, input_size=64, width=0.25,
                         refine_width=0.25, batch_size=2, persons=2, peak=1.0, channels_last=False)
    assert r["forward_gflops_frozen"] > 0 and r["mfu"] == pytest.approx(r["achieved_tflops"])
    expected = 3 * r["forward_gflops_trained"] + r["forward_gflops_frozen"]
    assert r["train_gflops_per_sample"] == pytest.approx(expected)


@pytest.mark.slow          # several minutes on 2 cores: every stage's benchmark and a short training run
def test_gpu_check_cpu_smoke_writes_its_summary(tiny_world, tmp_path):
    """experiments/gpu_check.sh --cpu-smoke: every step runs (tiny sizes on the CPU) and the summary holds the
    throughput rows (TFLOP/s, no MFU without a peak), the loader check and the end-to-end run."""
    out = tmp_path / "gpu"
    env = {**os.environ, "PY": sys.executable, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "CORRTRACK_SYNTH_ROOT": str(tiny_world.parent)}
    script = str(ROOT / "experiments" / "gpu_check.sh")
    r = subprocess.run(["bash", script, "--cpu-smoke", str(out)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=3600)
    steps = (out / "steps.tsv").read_text()
    assert r.returncode == 0, steps + r.stdout[-3000:]
    assert {line.split("\t")[0] for line in steps.splitlines()} == \
        {"env", "tt_bf16", "tt_fp32", "tt_nchw", "world", "loader", "e2e", "summary"}
    s = json.loads((out / "summary.json").read_text())
    stages = {(row["file"], row["stage"]) for row in s["throughput"]}
    assert {("tt_bf16.json", "siamese"), ("tt_bf16.json", "refine"), ("tt_nchw.json", "siamese")} <= stages
    assert all(row["mfu"] is None and row["achieved_tflops"] > 0 for row in s["throughput"])
    assert s["data"]["loader_pairs_per_s"] > 0 and s["data"]["end_to_end_pairs_per_s"] > 0
    assert s["data"]["verdict"] in ("loader keeps up", "data-loader bound")
    md = (out / "summary.md").read_text()
    assert "| siamese |" in md and "n/a (no peak)" in md
