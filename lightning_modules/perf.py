"""Speed settings every stage's LightningModule applies when fitting (config section ``perf``; they change
no result beyond float rounding): docs/performance.md.

- ``channels_last`` (default on): the nets' weights in channels-last (NHWC) memory, so convolutions run
  on the layout cuDNN's bf16/fp16 tensor-core kernels and oneDNN's CPU kernels prefer (oneDNN: a
  `siamese cpu` step took 0.80 s instead of 1.45 s on one thread); inputs follow the weights' layout.
- ``compile_nets`` (default off): ``nn.Module.compile()`` of each child net, in place, so parameter names
  and checkpoints are unchanged; the first steps pay the compilation.
"""
from __future__ import annotations

import torch


class PerfSettings:
    """Mixin for a ``pl.LightningModule``: call :meth:`apply_perf_settings` from ``setup("fit")``, before
    the strategy moves the module to its device (the layout is kept) and DDP wraps it (its gradient
    buckets follow the parameters' layout; a later change makes resumed DDP runs differ in float
    rounding). ``experiments.run`` sets the two attributes from ``cfg.perf``."""

    channels_last: bool = True
    compile_nets: bool = False

    def apply_perf_settings(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile_nets:
            for net in self.children():
                if any(True for _ in net.parameters()):
                    net.compile()
