"""DataLoader worker set-up shared by every DataModule."""
from __future__ import annotations


def worker_init(worker_id: int) -> None:
    """One OpenCV thread per worker (torch already uses one there): workers are parallel processes, and
    extra threads in each only oversubscribe the cores. Ctrl-C is the training process's to handle (it
    finishes the step and saves a checkpoint; a worker killed by it would end the run with an error
    instead). Then Lightning's per-worker seeding, which a custom ``worker_init_fn`` would otherwise
    replace."""
    import signal

    import cv2
    from lightning_fabric.utilities.seed import pl_worker_init_function

    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pl_worker_init_function(worker_id)


def loader_settings(cfg) -> tuple[int, bool]:
    """``(num_workers, pin_memory)`` of a ``data`` config section, resolving ``auto``:

    - ``num_workers: auto``: with CUDA, the usable cores per GPU (one training process per GPU) minus one
      for the training process, between 1 and 16; without CUDA, 2 (a CPU run needs its cores for the step).
    - ``pin_memory: auto``: on when CUDA is available (page-locked batches copy to the GPU asynchronously).
    """
    import os

    import torch

    cuda = torch.cuda.is_available()
    nw = cfg.num_workers
    if nw == "auto":
        if cuda:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            nw = max(1, min(16, cores // max(1, torch.cuda.device_count()) - 1))
        else:
            nw = 2
    pin = cfg.pin_memory
    if pin == "auto":
        pin = cuda
    return int(nw), bool(pin)
