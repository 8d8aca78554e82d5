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
