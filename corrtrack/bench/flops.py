"""Model FLOPs of each training stage and model-FLOP utilisation (MFU).

Counting: :func:`forward_flops` runs a closure under ``torch.utils.flop_counter.FlopCounterMode``, which
counts 2 FLOPs per multiply-accumulate of every matmul and convolution (transposed and grouped ones
included, so the affinity correlation of eq. 1 is counted); BatchNorm, activations, pooling, softmax and
the optimiser are not. The stages' problems (:mod:`corrtrack.bench.throughput`) are built on PyTorch's
``meta`` device, so counting a paper-size net costs no arithmetic.

Convention for training: **training FLOPs = 3 x the forward FLOPs of the trained nets** (the backward
pass computes gradients with respect to activations and to weights, each about one forward) **+ 1 x the
forward FLOPs of frozen nets** (the refine stage's Siamese net runs under ``no_grad``). The first
convolution needs no input gradient, so 3x slightly over-counts; this is the usual convention of MFU
figures. MFU = achieved training FLOP/s / the device's dense bf16 tensor-core peak (:data:`PEAK_TFLOPS`),
whatever precision the run used, so fp32 and bf16 runs are compared against the same ceiling.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

#: dense (no structured sparsity) bf16 tensor-core peak in TFLOP/s, from NVIDIA's data sheets; matched in
#: order against ``torch.cuda.get_device_name`` (the first key contained in the name wins)
PEAK_TFLOPS: dict[str, float] = {
    "H200": 989.4,        # H200 SXM (same compute as H100 SXM)
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.4,        # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    "A100": 312.0,        # SXM4 and PCIe, 40 and 80 GB
}


def peak_tflops(device_name: str | None) -> float | None:
    """Dense bf16 peak TFLOP/s of a GPU from its name (``torch.cuda.get_device_name``); None when unknown
    (a CPU, or a GPU missing from :data:`PEAK_TFLOPS`: pass the peak explicitly then)."""
    if not device_name:
        return None
    for key, tflops in PEAK_TFLOPS.items():
        if key.lower() in device_name.lower():
            return tflops
    return None


def forward_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (2 per multiply-accumulate of matmuls and convolutions) of calling ``fn()`` once under
    ``torch.no_grad``. Works on ``meta`` tensors (shapes only, no arithmetic)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return int(counter.get_total_flops())


def training_flops(trained_forward: int, frozen_forward: int = 0) -> int:
    """Training FLOPs of one sample: 3 x the trained nets' forward + 1 x the frozen nets' forward (see the
    module docstring)."""
    return 3 * int(trained_forward) + int(frozen_forward)


def utilisation(train_flops_per_sample: float, samples_per_s: float, peak: float | None) -> dict:
    """Achieved training TFLOP/s and, when ``peak`` (TFLOP/s) is known, the MFU (a fraction)."""
    achieved = train_flops_per_sample * samples_per_s / 1e12
    return {"achieved_tflops": achieved, "peak_tflops": peak,
            "mfu": achieved / peak if peak else None}
