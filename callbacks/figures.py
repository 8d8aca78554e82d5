"""Validation figures of every stage, written to the run folder and to W&B by one callback scheme.

At every n-th validation (the 1st, n+1-th, ...; sanity checks do not count, so with
``trainer.check_val_every_n_epoch`` > 1 figures still come), on rank 0, a figure callback takes what it
needs from the first validation batch and what ``validation_step`` returned for it, draws an RGB image,
writes it to ``<figures_dir>/<stage>_val_epoch<EEE>.png`` and, when a ``WandbLogger`` is attached, logs
it under ``val/figure``. A failing figure is reported and never stops training.

- :class:`AffinityFigure` (stages ``siamese`` / ``refine``): per query joint, the query on I1 and each
  map (S, C) over I2 with the target (o) and the argmax (x).
- :class:`PoseFigure` (stages ``pose`` / ``finetune``): a contact sheet of crops with predicted
  (orange) and ground-truth (green) skeletons.

Config (every stage): ``figures.every_n_validations`` (0 = off), ``figures.samples`` (query joints per
affinity figure, crops per pose sheet).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger(__name__)

WANDB_KEY = "val/figure"


def figure_path(figures_dir: str | Path, stage: str, epoch: int) -> Path:
    """Where the figure of ``stage`` at ``epoch`` goes: ``<figures_dir>/<stage>_val_epoch<EEE>.png``."""
    return Path(figures_dir) / f"{stage}_val_epoch{int(epoch):03d}.png"


class ValidationFigure(pl.Callback):
    """Base of the figure callbacks: when to draw, where to write. Subclasses implement ``capture``
    (first validation batch -> CPU data or None) and ``draw`` (data -> (H, W, 3) uint8 RGB)."""

    def __init__(self, figures_dir: str | Path | None, stage: str, every_n_validations: int = 1,
                 samples: int = 8):
        self.figures_dir = Path(figures_dir) if figures_dir else None
        self.stage = str(stage)
        self.every = int(every_n_validations or 0)
        self.samples = int(samples)
        self.validations = 0                  # validations run in this fit (sanity checks not counted)
        self.written: list[Path] = []
        self._data: Any = None
        self._want = False

    def capture(self, pl_module: pl.LightningModule, batch: dict, outputs: Any) -> Any:
        raise NotImplementedError

    def draw(self, pl_module: pl.LightningModule, data: Any) -> np.ndarray:
        raise NotImplementedError

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._data = None
        self._want = False
        if trainer.sanity_checking:
            return
        self.validations += 1
        self._want = (self.every > 0 and self.samples > 0 and trainer.is_global_zero
                      and (self.validations - 1) % self.every == 0)

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._want and self._data is None and batch_idx == 0 and dataloader_idx == 0 and outputs is not None:
            with torch.no_grad():
                self._data = self.capture(pl_module, batch, outputs)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._data is None:
            return
        data, self._data = self._data, None
        try:
            self.save(trainer, self.draw(pl_module, data), pl_module.current_epoch, pl_module.global_step)
        except Exception as e:  # a figure must never kill a run
            log.warning("%s validation figure failed: %r", self.stage, e)

    def save(self, trainer: pl.Trainer, image: np.ndarray, epoch: int, step: int) -> Path | None:
        """Write the PNG (if a folder is set) and log the image to every W&B logger."""
        path = None
        if self.figures_dir is not None:
            import cv2

            path = figure_path(self.figures_dir, self.stage, epoch)
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            self.written.append(path)
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger):
                lg.log_image(key=WANDB_KEY, images=[image], step=step)
        return path


# ----------------------------------------------------------------------------------------------- affinity

class AffinityFigure(ValidationFigure):
    """Affinity maps of the correspondence stages. Reads from the module: ``stage_name``,
    ``hparams["stride"]`` and ``hparams["joint_layout"]``; from ``validation_step``'s return value:
    ``probs`` (B, P, J, h, w) and optionally ``extra`` {name: maps}."""

    def capture(self, pl_module: pl.LightningModule, batch: dict, outputs: dict) -> dict | None:
        """The first sample's images and up to ``samples`` queried joints (present ones first) with their
        maps, on the CPU."""
        q = batch["query_valid"]
        sel = (q.nonzero()[:, 0] == 0).nonzero()[:, 0]
        if sel.numel() == 0:
            return None
        pres = batch["present"][q][sel]
        order = sel[torch.argsort((~pres).to(torch.int8), stable=True)][: self.samples]
        maps = {"S" if pl_module.stage_name == "siamese" else "C": outputs["probs"][q][order]}
        for k, v in outputs.get("extra", {}).items():
            maps["S" if k == "siamese" else k] = v[q][order]
        return {"image1": batch["image1"][:1].cpu(), "image2": batch["image2"][:1].cpu(),
                "kpts1": batch["kpts1"][q][order].cpu(), "target_xy": batch["target_xy"][q][order].cpu(),
                "present": batch["present"][q][order].cpu(), "joints": q.nonzero()[order][:, 2].cpu(),
                "maps": {k: v.detach().float().cpu() for k, v in maps.items()},
                "stride": int(pl_module.hparams.get("stride", 4)),
                "layout": pl_module.hparams.get("joint_layout", "coco"),
                "title": f"{pl_module.stage_name} epoch {pl_module.current_epoch}"}

    def draw(self, pl_module: pl.LightningModule, data: dict) -> np.ndarray:
        return draw_affinity_figure(data)


def _map_panel(ax, image2: np.ndarray, m: np.ndarray, stride: int, target: list[float] | None,
               name: str) -> None:
    """One map over I2: cell i is centred on pixel stride * i; target (o) when present, argmax (x)."""
    h2, w2 = image2.shape[:2]
    ax.imshow(image2)
    ax.imshow(np.kron(m, np.ones((stride, stride))), cmap="jet", alpha=0.5,
              extent=(-stride / 2, w2 - stride / 2, h2 - stride / 2, -stride / 2))
    ay, axx = np.unravel_index(int(m.argmax()), m.shape)
    ax.plot(axx * stride, ay * stride, "x", ms=7, c="white", mew=2)
    if target is not None:
        ax.plot(target[0], target[1], "o", ms=7, mfc="none", mec="lime", mew=2)
    status = "target o, argmax x" if target is not None else "absent in I2"
    ax.set_title(f"{name} max {m.max():.2f} ({status})", fontsize=8)
    ax.set_xlim(-0.5, w2 - 0.5)
    ax.set_ylim(h2 - 0.5, -0.5)


def draw_affinity_figure(data: dict) -> np.ndarray:
    """(H, W, 3) uint8 RGB: one row per query joint, the query on I1 then each map over I2."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from corrtrack.keypoints import COCO_NAMES, POSETRACK_NAMES
    from corrtrack.nets.utils import denormalize_images

    names = POSETRACK_NAMES if data["layout"] == "posetrack" else COCO_NAMES
    i1, i2 = denormalize_images(data["image1"])[0], denormalize_images(data["image2"])[0]
    stride = data["stride"]
    map_names = list(data["maps"])
    n = len(data["joints"])
    fig, axes = plt.subplots(n, 1 + len(map_names), figsize=(2.6 * (1 + len(map_names)), 2.6 * n),
                             squeeze=False, dpi=80)
    for r in range(n):
        qx, qy = (data["kpts1"][r] * stride).tolist()
        axes[r, 0].imshow(i1)
        axes[r, 0].plot(qx, qy, "o", ms=7, mfc="none", mec="lime", mew=2)
        axes[r, 0].set_title(f"I1 query: {names[int(data['joints'][r])]}", fontsize=8)
        target = (data["target_xy"][r] * stride).tolist() if bool(data["present"][r]) else None
        for c, name in enumerate(map_names, start=1):
            _map_panel(axes[r, c], i2, data["maps"][name][r].numpy(), stride, target, name)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(data["title"], fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


# ----------------------------------------------------------------------------------------------- pose

class PoseFigure(ValidationFigure):
    """Contact sheet of the first validation batch's crops. Reads ``hparams["layout"]`` from the module;
    from ``validation_step``'s return value ``crop_poses`` (B, J, 3) in crop pixels; GT from the batch's
    ``keypoints``."""

    def capture(self, pl_module: pl.LightningModule, batch: dict, outputs: dict) -> dict:
        from corrtrack.pose import from_input_tensor

        k = self.samples
        return {"crops": from_input_tensor(batch["image"][:k]), "poses": np.asarray(outputs["crop_poses"][:k]),
                "gt": batch["keypoints"][:k].cpu().numpy(), "layout": pl_module.hparams.layout}

    def draw(self, pl_module: pl.LightningModule, data: dict) -> np.ndarray:
        from corrtrack.keypoints import layout as keypoint_layout
        from corrtrack.pose import pose_grid

        return pose_grid(data["crops"], data["poses"], keypoint_layout(data["layout"])["skeleton"], gt=data["gt"])


__all__ = ["AffinityFigure", "PoseFigure", "ValidationFigure", "WANDB_KEY", "draw_affinity_figure",
           "figure_path"]
