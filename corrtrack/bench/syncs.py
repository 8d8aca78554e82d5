"""Count the operations that make the host wait for a CUDA device, on any device (CPU included).

On a GPU, ``tensor.item()``, ``float(t)``, ``bool(t)`` (``if t.any():``), ``t.tolist()``, boolean-mask
indexing (``x[mask]``, ``x[mask] = v``) and ``nonzero`` copy a value or a data-dependent shape back to the
host, so the CPU stops queueing kernels until the GPU has caught up. Those calls look the same on the CPU,
so :class:`HostSyncCounter` finds them without a GPU: a ``TorchDispatchMode`` that counts the aten
operations behind them (``_local_scalar_dense``, ``nonzero``, ``masked_select``, ``index`` /
``index_put_`` with a boolean index) together with the file and line that called them.
"""
from __future__ import annotations

import collections
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = ("_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "equal")


def _bool_index(name: str, args: tuple) -> bool:
    if name not in ("index", "index_put", "index_put_") or len(args) < 2:
        return False
    if not isinstance(args[1], (list, tuple)):
        return False
    return any(isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in args[1])


class HostSyncCounter(TorchDispatchMode):
    """``with HostSyncCounter() as c: ...``; then ``c.total`` and ``c.calls`` ({(op, "file:line"): count},
    the innermost caller outside torch)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in SYNC_OPS or _bool_index(name, args):
            frames = [f for f in traceback.extract_stack()[:-1]
                      if "/torch/" not in f.filename and not f.filename.endswith("syncs.py")]
            where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
            self.calls[(name + ("[bool mask]" if name.startswith("index") else ""), where)] += 1
        return func(*args, **(kwargs or {}))
