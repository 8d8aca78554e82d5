"""Training throughput of every stage's networks on synthetic in-memory batches, with model FLOPs and MFU.

    python -m corrtrack.bench train-throughput --stage siamese [--device cuda] [--precision auto]

Each stage is a :class:`StageProblem`: its nets (trained and frozen), a random batch already on the device
(no data loading: this is the ceiling the real loader is compared against) and the forward + loss of
one training step, written as the stage's LightningModule computes it:

- ``siamese`` (unit: pair): both images through :class:`~corrtrack.nets.SiameseNet`, 3x3 descriptors of
  ``persons`` x 17 keypoints of I1, affinities on F2, log-softmax, BCE of eq. 4.
- ``refine`` (pair): the frozen Siamese net and its maps S under ``no_grad``, then the refinement net on
  every person (all ``persons`` valid), BCE-with-logits of eq. 5.
- ``pose`` (crop): the two-stage pose net, heatmap BCE + offset L1 of both stages.
- ``reid`` (crop): the re-ID net, identity cross-entropy (the batch-hard triplet term, O(B^2) distances,
  is left out: negligible FLOPs).

Then backward and an Adam step. Defaults are the ``paper`` presets' sizes (:data:`PAPER`); FLOPs are
counted on the ``meta`` device (:mod:`corrtrack.bench.flops`, whose docstring states the 3x convention).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from corrtrack import correspondence as corr
from corrtrack.bench.flops import forward_flops, peak_tflops, training_flops, utilisation
from corrtrack.keypoints import NUM_JOINTS

#: sizes of the ``paper`` presets (experiments/configs/<stage>/paper.yaml and the stage files; a test keeps
#: them equal): net arguments, input size (H, W), samples per batch, persons queried per pair
PAPER: dict[str, dict[str, Any]] = {
    "siamese": {"variant": "paper", "width": 1.0, "input_size": (256, 256), "batch_size": 32, "persons": 8},
    "refine": {"variant": "paper", "width": 1.0, "refine_width": 1.0, "input_size": (256, 256),
               "batch_size": 32, "persons": 8},
    "pose": {"width": 1.0, "trunk_stride": 8, "input_size": (384, 288), "batch_size": 32},
    "reid": {"arch": "resnet50", "width": 1.0, "input_size": (256, 128), "batch_size": 64,
             "num_classes": 256},
}
STAGES = tuple(PAPER)
UNITS = {"siamese": "pair", "refine": "pair", "pose": "crop", "reid": "crop"}
AUTOCAST = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


@dataclass
class StageProblem:
    """One training step of a stage. ``frozen_forward(batch)`` runs the frozen nets (under ``no_grad``)
    and returns what ``trained_forward(batch, ctx)`` needs; the latter returns the scalar loss."""
    stage: str
    trained: list[nn.Module]
    frozen: list[nn.Module]
    make_batch: Callable[[int, torch.device], dict]
    trained_forward: Callable[[dict, Any], Tensor]
    frozen_forward: Callable[[dict], Any] = lambda batch: None
    config: dict = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return UNITS[self.stage]

    def modules(self) -> list[nn.Module]:
        return [*self.trained, *self.frozen]


def _hw(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _pair_batch(b: int, dev: torch.device, hw: tuple[int, int], persons: int, stride: int = 4) -> dict:
    """Random pair batch as ``datamodules.pairs`` delivers it: images, keypoints of I1 in feature cells,
    target cells in F2 (90 % inside I2), every keypoint queried."""
    h, w = hw[0] // stride, hw[1] // stride
    shape = (b, persons, NUM_JOINTS)
    return {"image1": torch.randn(b, 3, *hw, device=dev), "image2": torch.randn(b, 3, *hw, device=dev),
            "kpts1": torch.rand(*shape, 2, device=dev) * torch.tensor([w - 1.0, h - 1.0], device=dev),
            "query_valid": torch.ones(shape, dtype=torch.bool, device=dev),
            "cells": torch.stack([torch.randint(0, w, shape, device=dev),
                                  torch.randint(0, h, shape, device=dev)], -1),
            "present": torch.rand(shape, device=dev) < 0.9}


def build_problem(stage: str, device: str | torch.device = "meta", **overrides: Any) -> StageProblem:
    """The :class:`StageProblem` of ``stage`` with its nets on ``device`` (``meta``: shapes only, for
    counting FLOPs). ``overrides`` replace :data:`PAPER` entries (``width``, ``input_size``, ...)."""
    if stage not in PAPER:
        raise ValueError(f"stage must be one of {', '.join(STAGES)} (got {stage!r})")
    cfg = {**PAPER[stage], **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(cfg) - set(PAPER[stage])
    if unknown:
        raise ValueError(f"stage {stage!r} has no setting(s) {', '.join(sorted(unknown))}")
    cfg["input_size"] = _hw(cfg["input_size"])
    p = _build(stage, cfg)
    for m in p.modules():
        m.to(torch.device(device))   # built on the CPU: under a meta-device context it is ~10x slower
    return p


def _build(stage: str, cfg: dict) -> StageProblem:
    if stage in ("siamese", "refine"):
        return _correspondence_problem(stage, cfg)
    return _pose_problem(cfg) if stage == "pose" else _reid_problem(cfg)


def _correspondence_problem(stage: str, cfg: dict) -> StageProblem:
    from corrtrack.nets import RefinementNet, SiameseNet

    hw = cfg["input_size"]
    siamese = SiameseNet(cfg["variant"], width=float(cfg["width"]), descriptor="bilinear")

    def make_pair(b: int, d: torch.device) -> dict:
        return _pair_batch(b, d, hw, int(cfg["persons"]))

    if stage == "siamese":
        def step(batch: dict, ctx: Any) -> Tensor:
            f1, f2 = siamese.forward_pair(batch["image1"], batch["image2"])
            a = corr.affinity(corr.extract_descriptors(f1, batch["kpts1"], batch["query_valid"],
                                                       siamese.descriptor), f2)
            return corr.correspondence_bce(corr.log_softmax_maps(a.float()), batch["cells"],
                                           batch["present"], batch["query_valid"], kind="log_prob")

        return StageProblem(stage, [siamese.train()], [], make_pair, step, config=cfg)
    refinement = RefinementNet(width=float(cfg["refine_width"]),
                               in_channels=2 * siamese.feat_channels + NUM_JOINTS, residual=True)
    siamese.eval().requires_grad_(False)

    def frozen(batch: dict) -> Any:
        with torch.no_grad():
            f1, f2 = siamese.forward_pair(batch["image1"], batch["image2"])
            _, s = corr.siamese_maps(f1, f2, batch["kpts1"], batch["query_valid"],
                                     sampling=siamese.descriptor)
        return f1, f2, s

    def refine_step(batch: dict, ctx: Any) -> Tensor:
        f1, f2, s = ctx
        logits = refinement(f1, f2, s)
        return corr.correspondence_bce(logits.float(), batch["cells"], batch["present"],
                                       batch["query_valid"], kind="logit")

    return StageProblem(stage, [refinement.train()], [siamese], make_pair, refine_step, frozen, cfg)


def _pose_problem(cfg: dict) -> StageProblem:
    from corrtrack.nets.pose import PoseNet

    hw = cfg["input_size"]
    net = PoseNet(width=float(cfg["width"]), trunk_stride=int(cfg["trunk_stride"])).train()
    s = net.stride

    def make_crops(b: int, d: torch.device) -> dict:
        g = (hw[0] // s, hw[1] // s)
        return {"image": torch.randn(b, 3, *hw, device=d),
                "heatmaps": (torch.rand(b, NUM_JOINTS, *g, device=d) < 0.01).float(),
                "offsets": torch.randn(b, NUM_JOINTS, 2, *g, device=d),
                "offset_mask": torch.rand(b, NUM_JOINTS, *g, device=d) < 0.05}

    def pose_step(batch: dict, ctx: Any) -> Tensor:
        out = net(batch["image"])
        loss = batch["image"].new_zeros(())
        mask = batch["offset_mask"][:, :, None].float()
        for hm, off in zip(out["heatmaps"], out["offsets"]):
            loss = loss + F.binary_cross_entropy_with_logits(hm.float(), batch["heatmaps"])
            loss = loss + ((off.float() - batch["offsets"]).abs() * mask).sum() / mask.sum().clamp(min=1)
        return loss

    return StageProblem("pose", [net], [], make_crops, pose_step, config=cfg)


def _reid_problem(cfg: dict) -> StageProblem:
    from corrtrack.nets.reid import build_reid_net

    hw = cfg["input_size"]
    kw = {"width": float(cfg["width"])} if cfg["arch"] == "bninception" else {}
    net = build_reid_net(cfg["arch"], num_classes=int(cfg["num_classes"]), **kw).train()

    def make_ids(b: int, d: torch.device) -> dict:
        return {"image": torch.randn(b, 3, *hw, device=d),
                "label": torch.randint(0, int(cfg["num_classes"]), (b,), device=d)}

    def reid_step(batch: dict, ctx: Any) -> Tensor:
        return F.cross_entropy(net(batch["image"])["logits"].float(), batch["label"], label_smoothing=0.1)

    return StageProblem("reid", [net], [], make_ids, reid_step, config=cfg)


def stage_flops(stage: str, **overrides: Any) -> dict:
    """Forward FLOPs per sample (pair or crop) of a stage's trained and frozen nets, counted on ``meta``
    tensors at batch 2 (halved), and the training FLOPs per sample (3 x trained + 1 x frozen)."""
    p = build_problem(stage, "meta", **overrides)
    n = 2                                    # BatchNorm in training mode needs two samples
    batch = p.make_batch(n, torch.device("meta"))
    frozen = forward_flops(lambda: p.frozen_forward(batch)) // n
    ctx = p.frozen_forward(batch)
    trained = forward_flops(lambda: p.trained_forward(batch, ctx)) // n
    return {"stage": stage, "unit": p.unit, "forward_trained": trained, "forward_frozen": frozen,
            "train": training_flops(trained, frozen), "config": {k: v for k, v in p.config.items()}}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: "bf16" on a CUDA device that supports it, else "32" (CPU keeps fp32)."""
    if precision != "auto":
        if precision not in AUTOCAST:
            raise ValueError(f"precision must be auto or one of {', '.join(AUTOCAST)} (got {precision!r})")
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "32"


def train_throughput(stage: str, device: str = "cpu", precision: str = "auto", steps: int = 20,
                     warmup: int = 3, channels_last: bool = True, compile: bool = False,
                     cudnn_benchmark: bool = True, peak: float | None = None, threads: int | None = None,
                     progress: bool = False, **overrides: Any) -> dict:
    """Samples per second of ``steps`` training steps (forward, loss, backward, Adam) of a stage on
    synthetic batches already on ``device``, after ``warmup`` untimed steps (the first one, which
    compiles when ``compile``, is timed apart: ``first_step_s``), with model FLOPs, achieved TFLOP/s and
    MFU against ``peak`` TFLOP/s (default: :func:`corrtrack.bench.flops.peak_tflops` of the GPU; None on
    CPU). The timed loop has no host synchronisation: CUDA is synchronised at its two ends only."""
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(int(threads))
    prec = resolve_precision(precision, dev)
    dtype = AUTOCAST[prec]
    flops = stage_flops(stage, **overrides)
    torch.manual_seed(0)
    p = build_problem(stage, dev, **overrides)
    bs = int(p.config["batch_size"])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for m in p.modules():
        m.to(memory_format=fmt)
    if compile:
        for m in p.modules():
            m.compile()       # in place: parameter names (and so checkpoints) unchanged
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
        torch.cuda.reset_peak_memory_stats(dev)
    batch = p.make_batch(bs, dev)
    for k, v in batch.items():
        if v.dim() == 4 and v.shape[1] == 3:
            batch[k] = v.contiguous(memory_format=fmt)
    params = [q for m in p.trained for q in m.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype is torch.float16)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = p.trained_forward(batch, p.frozen_forward(batch))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    first, sec = _time_steps(step, sync, warmup, steps, f"{stage} steps" if progress else None)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    if peak is None:
        peak = peak_tflops(name)
    rate = bs / sec
    out = {"stage": stage, "unit": p.unit, "device": str(dev), "device_name": name or "cpu",
           "precision": prec, "channels_last": bool(channels_last), "compile": bool(compile),
           "cudnn_benchmark": bool(cudnn_benchmark) if dev.type == "cuda" else None,
           "threads": torch.get_num_threads(), "batch_size": bs, "steps": steps, "warmup": warmup,
           "first_step_s": first, "sec_per_step": sec, "samples_per_s": rate,
           "params": sum(q.numel() for m in p.modules() for q in m.parameters()),
           "forward_gflops_trained": flops["forward_trained"] / 1e9,
           "forward_gflops_frozen": flops["forward_frozen"] / 1e9,
           "train_gflops_per_sample": flops["train"] / 1e9,
           **utilisation(flops["train"], rate, peak),
           "config": {k: list(v) if isinstance(v, tuple) else v for k, v in p.config.items()}}
    if dev.type == "cuda":
        out["max_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    return out


def _time_steps(step: Callable[[], None], sync: Callable[[], None], warmup: int, steps: int,
                desc: str | None) -> tuple[float, float]:
    """(seconds of the first step, mean seconds of ``steps`` steps after ``warmup`` untimed ones, the first
    included); ``sync`` only around the timed loop."""
    t0 = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        step()
    sync()
    it = range(steps)
    if desc:
        from tqdm import tqdm

        it = tqdm(it, desc=desc, leave=False)
    t0 = time.perf_counter()
    for _ in it:
        step()
    sync()
    return first, (time.perf_counter() - t0) / steps


def describe(r: dict) -> str:
    """One line: samples/s, TFLOP/s and MFU (or why there is none)."""
    if r["mfu"] is not None:
        mfu = f"MFU {100 * r['mfu']:.1f} % of {r['peak_tflops']:.0f} TFLOP/s dense bf16"
    else:
        mfu = "MFU n/a (no known peak for this device: pass --peak-tflops)"
    size = "x".join(str(v) for v in r["config"]["input_size"])
    return (f"{r['stage']:8s} {size:>7s} batch {r['batch_size']:3d} {r['device_name']} {r['precision']:>4s} "
            f"{'NHWC' if r['channels_last'] else 'NCHW'}{' compiled' if r['compile'] else ''}: "
            f"{r['samples_per_s']:8.1f} {r['unit']}s/s, {r['train_gflops_per_sample']:.1f} GFLOP/{r['unit']} "
            f"(3x fwd {r['forward_gflops_trained']:.1f} + frozen {r['forward_gflops_frozen']:.1f}), "
            f"{r['achieved_tflops']:.3g} TFLOP/s, {mfu}")
