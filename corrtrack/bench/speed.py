"""Speed figures of the correspondence stage: batched affinity vs a per-keypoint loop, and training pairs
per second of the Siamese net."""
from __future__ import annotations

import time

import torch

from corrtrack import correspondence as corr
from corrtrack.keypoints import NUM_JOINTS


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def affinity_speed(persons: int = 8, joints: int = NUM_JOINTS, size: int = 64, channels: int = 32,
                   repeats: int = 5) -> dict:
    """Seconds per frame pair of the batched affinity (one gather + one grouped conv) vs a Python loop
    over persons x joints (one patch slice + one conv2d each); and their ratio."""
    g = torch.Generator().manual_seed(0)
    f1 = torch.nn.functional.normalize(torch.randn(1, channels, size, size, generator=g), dim=1)
    f2 = torch.nn.functional.normalize(torch.randn(1, channels, size, size, generator=g), dim=1)
    kpts = torch.rand(1, persons, joints, 2, generator=g) * (size - 1)

    def batched():
        with torch.no_grad():
            return corr.softmax_maps(corr.affinity(corr.extract_descriptors(f1, kpts), f2))

    def loop():
        out = []
        with torch.no_grad():
            pad = torch.nn.functional.pad(f1, (1, 1, 1, 1))
            for p in range(persons):
                for j in range(joints):
                    x, y = (int(v) for v in torch.floor(kpts[0, p, j] + 0.5))
                    d = pad[:, :, y:y + 3, x:x + 3]
                    a = torch.nn.functional.conv2d(f2, d, padding=1)
                    out.append(torch.softmax(a.flatten(), 0))
        return out

    tb, tl = _time(batched, repeats), _time(loop, repeats)
    return {"persons": persons, "joints": joints, "size": size, "channels": channels,
            "batched_ms": 1000 * tb, "loop_ms": 1000 * tl, "speedup": tl / tb}


AUTOCAST = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


def training_speed(variant: str = "release", width: float = 0.25, input_size: int = 128, batch_size: int = 8,
                   persons: int = 4, steps: int = 3, threads: int | None = None, device: str = "cpu",
                   precision: str = "32") -> dict:
    """Training pairs per second of the Siamese stage on this machine: forward of both images, affinity
    maps of ``persons`` x 17 random keypoints per pair, BCE loss (eq. 4), backward, Adam step.
    ``precision``: "32", or "bf16" / "16" for autocast mixed precision (with a gradient scaler for "16"),
    as Lightning's ``bf16-mixed`` / ``16-mixed`` do."""
    from corrtrack.nets import SiameseNet, count_parameters

    if precision not in AUTOCAST:
        raise ValueError(f"precision must be one of {', '.join(AUTOCAST)} (got {precision!r})")
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    net = SiameseNet(variant, width=width).train()
    net = net.to(dev, memory_format=torch.channels_last)  # as training does (CorrespondenceModule.on_fit_start)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    dtype = AUTOCAST[precision]
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype is torch.float16)
    x1 = torch.randn(batch_size, 3, input_size, input_size, device=dev)
    x2 = torch.randn(batch_size, 3, input_size, input_size, device=dev)
    h = input_size // 4
    n = batch_size * persons * NUM_JOINTS
    kpts = torch.rand(n, 2, device=dev) * (h - 1)
    bidx = torch.arange(batch_size, device=dev).repeat_interleave(persons * NUM_JOINTS)
    cells = torch.floor(torch.rand(n, 2, device=dev) * h).long()
    inside = torch.rand(n, device=dev) > 0.1

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            f1, f2 = net.forward_pair(x1, x2)
            a = corr.affinity_maps(f1, f2, kpts, bidx)
            loss = corr.correspondence_bce(corr.log_softmax_maps(a.float()), cells, inside)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    sec = _time(step, steps)
    out = {"variant": variant, "width": width, "input_size": input_size, "batch_size": batch_size,
           "keypoints_per_pair": persons * NUM_JOINTS, "params": count_parameters(net), "device": str(dev),
           "precision": precision, "threads": torch.get_num_threads(), "sec_per_step": sec,
           "pairs_per_s": batch_size / sec}
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(dev)
        out["max_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    return out
