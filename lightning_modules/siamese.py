"""SiameseModule: trains the Siamese matching module on affine pairs (paper §4.1, §4.3, eq. 4).

Also holds what both correspondence stages share (``CorrespondenceModule``): optimiser, validation
metrics, the affinity-map figure. The networks are ``corrtrack.nets`` modules; descriptors and
affinities are ``corrtrack.correspondence`` functions.

Checkpoint contract (``corrtrack.correspondence.load_correspondence_checkpoint`` relies on it): the
nets are the attributes ``siamese`` and ``refinement``; ``hparams["net"]`` = {"siamese": SiameseNet
kwargs, "refinement": RefinementNet kwargs or None}; ``hparams["input_size"]`` the training pair size;
``hparams["stride"]`` 4; ``hparams["joint_layout"]`` the layout of the 17 training slots ("coco" or
"posetrack"; the refinement net's channels follow it); ``hparams["stage"]`` the stage ("siamese" |
"refine", what ``corrtrack.checkpoints.stage_of`` reads).

Metrics (keys namespaced, DESIGN §5):
- ``train/loss``, ``val/loss``: eq. 4 (resp. 5), summed over the pixels of a map, averaged over the
  queried keypoints (annotated and inside I1; truncated ones included, their target is all zero).
- ``val/corr_pck``: share of queried keypoints present in I2 whose map argmax lies within one feature
  cell (Euclidean distance <= 1 cell = 4 input pixels) of the true warped position.
- ``val/absent_reject``: share of truncated keypoints whose map maximum is below 0.5. For the Siamese
  stage the map is the softmax S, whose maximum is < 0.5 whenever it is not confident of one cell — a
  weak notion of rejection (S sums to 1 and cannot say "absent"); the refinement stage's sigmoid C can.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from corrtrack import correspondence as corr
from corrtrack.nets.correspondence import SiameseNet
from lightning_modules.schedule import budgeted_multistep

log = logging.getLogger(__name__)

DEFAULT_OPTIM = {"lr": 1e-4, "weight_decay": 0.0, "milestones": [50], "gamma": 0.1, "time_milestones": []}
DEFAULT_LOSS = {"include_absent": True}
DEFAULT_VIS = {"every_n_epochs": 1, "queries": 3}


def pck_hits(maps: Tensor, target_xy: Tensor, threshold: float = 1.0) -> Tensor:
    """(N,) bool: the (plain, cell-level) argmax of each (N, h, w) map lies within ``threshold`` feature
    cells (Euclidean) of (N, 2) ``target_xy``."""
    xy = corr.maps_argmax(maps.float(), subpixel=False)[:, :2]
    return (xy - target_xy.float()).norm(dim=1) <= threshold


class CorrespondenceModule(pl.LightningModule):
    """Shared training/validation logic of the two correspondence stages.

    Subclasses implement ``maps(batch) -> dict`` with ``loss`` (scalar: eq. 4 / 5 summed over pixels,
    averaged over the queried keypoints) and ``probs`` (B, P, J, h, w), the maps the metrics score (S or
    sigmoid(C)); optionally ``extra`` (name -> (B, P, J, h, w) maps) shown in figures and scored as
    ``val/<name>_pck``.
    """

    include_absent: bool = True
    stage_name = "correspondence"

    def __init__(self, optim: dict | None, loss: dict | None, vis: dict | None) -> None:
        super().__init__()
        self.optim_cfg = {**DEFAULT_OPTIM, **dict(optim or {})}
        self.loss_cfg = {**DEFAULT_LOSS, **dict(loss or {})}
        self.vis_cfg = {**DEFAULT_VIS, **dict(vis or {})}
        self.include_absent = bool(self.loss_cfg["include_absent"])
        self.figure_dir: Path | None = None   # set by the stage builder; not a hyperparameter
        self._val: dict[str, Tensor] = {}
        self._vis: dict[str, Any] | None = None
        self._val_runs = 0                    # validations run in this fit (sanity checks not counted)

    def _save_hparams(self, input_size: int, stride: int, joint_layout: str, **extra: Any) -> None:
        """The checkpoint contract: ``net`` holds both nets' constructor kwargs."""
        ref = self.refinement.config() if self.refinement is not None else None
        self.save_hyperparameters({"stage": self.stage_name,
                                   "net": {"siamese": self.siamese.config(), "refinement": ref},
                                   "input_size": int(input_size), "stride": int(stride),
                                   "optim": self.optim_cfg, "loss": self.loss_cfg, "vis": self.vis_cfg,
                                   "joint_layout": joint_layout, **extra})

    # -- shared steps ---------------------------------------------------------------------------------
    def bce(self, maps: Tensor, batch: dict, kind: str) -> Tensor:
        """Eq. 4 (``kind="log_prob"``, maps = log S) or eq. 5 (``"logit"``, maps = C), summed over the
        pixels of each map and averaged over the queried keypoints (truncated ones too, unless
        ``loss.include_absent`` is false); ``corrtrack.correspondence.correspondence_bce``."""
        q = batch["query_valid"] if self.include_absent else batch["query_valid"] & batch["present"]
        cells = corr.index_to_cells(batch["target_idx"], maps.shape[-1])
        return corr.correspondence_bce(maps.float(), cells, batch["present"], q, kind=kind)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        out = self.maps(batch)
        bs = batch["image1"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=bs)
        with torch.no_grad():
            pres = batch["present"]
            if pres.any():
                hits = pck_hits(out["probs"][pres], batch["target_xy"][pres])
                self.log("train/corr_pck", hits.float().mean(), batch_size=bs)
        return out["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val = {}
        self._vis = None

    def _acc(self, key: str, value: Tensor | float) -> None:
        v = torch.as_tensor(value, dtype=torch.float64, device=self.device).detach()
        self._val[key] = self._val.get(key, torch.zeros((), dtype=torch.float64, device=self.device)) + v

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.maps(batch)
        pres = batch["present"]
        absent = batch["query_valid"] & ~pres
        self._acc("loss_sum", out["loss"])
        self._acc("batches", 1.0)
        # every key on every batch: under DDP all ranks must reduce the same vector
        for name, m in {"corr": out["probs"], **out.get("extra", {})}.items():
            hits = pck_hits(m[pres], batch["target_xy"][pres]).sum() if pres.any() else 0.0
            self._acc(f"{name}_hits", hits)
        self._acc("present", pres.sum())
        rejected = (out["probs"][absent].flatten(1).amax(1) < 0.5).sum() if absent.any() else 0.0
        self._acc("rejected", rejected)
        self._acc("absent", absent.sum())
        if batch_idx == 0 and self._vis is None:
            self._vis = self._figure_data(batch, out)

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        keys = sorted(self._val)
        vals = torch.stack([self._val[k] for k in keys])
        vals = self.trainer.strategy.reduce(vals, reduce_op="sum") if self.trainer.world_size > 1 else vals
        tot = dict(zip(keys, vals.tolist()))   # every rank logs the same, globally pooled values
        metrics = {"val/loss": tot["loss_sum"] / max(tot["batches"], 1.0)}
        for k in keys:
            if k.endswith("_hits"):
                metrics[f"val/{k[:-5]}_pck"] = tot[k] / max(tot["present"], 1.0)
        if tot["absent"] > 0:
            metrics["val/absent_reject"] = tot["rejected"] / tot["absent"]
        for k, v in metrics.items():
            self.log(k, v, prog_bar=k == "val/corr_pck")
        if self.trainer.sanity_checking:
            return
        self._val_runs += 1
        if self._vis is not None and self.trainer.is_global_zero:
            # every n-th validation (the 1st, n+1-th, ...): with trainer.check_val_every_n_epoch > 1 an
            # epoch count would skip figures altogether (validation at epochs 1, 3, ...; figures at 0, 2, ...)
            every = int(self.vis_cfg.get("every_n_epochs", 1) or 0)
            if every and (self._val_runs - 1) % every == 0:
                try:
                    self._save_figure()
                except Exception as e:  # a figure must never kill a run
                    log.warning("affinity figure failed: %r", e)

    # -- optimiser ------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        # oneDNN's CPU convolutions run about 1.8x faster on channels-last tensors (a `siamese cpu` step
        # measured 0.80 s vs 1.45 s on one thread); the affinity and loss code is layout-agnostic
        if self.device.type == "cpu":
            self.to(memory_format=torch.channels_last)

    def configure_optimizers(self):
        o = self.optim_cfg
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=float(o["lr"]), weight_decay=float(o.get("weight_decay", 0.0)))
        sched = budgeted_multistep(opt, lambda: self._trainer, o.get("milestones", []), float(o.get("gamma", 0.1)),
                                   o.get("time_milestones", []))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # -- figure ---------------------------------------------------------------------------------------
    def _figure_data(self, batch: dict, out: dict) -> dict:
        """First sample of the first validation batch: images, up to ``vis.queries`` queried joints
        (present ones first) and their maps, on the CPU."""
        q = batch["query_valid"]
        b_of = q.nonzero()[:, 0]
        sel = (b_of == 0).nonzero()[:, 0]
        if sel.numel() == 0:
            return None
        pres = batch["present"][q][sel]
        order = sel[torch.argsort((~pres).to(torch.int8), stable=True)][: int(self.vis_cfg.get("queries", 3))]
        maps = {"S" if self.stage_name == "siamese" else "C": out["probs"][q][order]}
        for k, v in out.get("extra", {}).items():
            maps["S" if k == "siamese" else k] = v[q][order]
        jidx = q.nonzero()[order]
        return {"image1": batch["image1"][:1].cpu(), "image2": batch["image2"][:1].cpu(),
                "kpts1": batch["kpts1"][q][order].cpu(), "target_xy": batch["target_xy"][q][order].cpu(),
                "present": batch["present"][q][order].cpu(), "joints": jidx[:, 2].cpu(),
                "maps": {k: v.detach().float().cpu() for k, v in maps.items()}}

    def _save_figure(self) -> Path | None:
        if self._vis is None:
            return None
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        from corrtrack.keypoints import COCO_NAMES, POSETRACK_NAMES
        from corrtrack.nets.utils import denormalize_images as denormalize

        v = self._vis
        names = POSETRACK_NAMES if self.hparams.get("joint_layout") == "posetrack" else COCO_NAMES
        i1, i2 = denormalize(v["image1"])[0], denormalize(v["image2"])[0]
        stride = int(self.hparams.get("stride", 4))
        map_names = list(v["maps"])
        n = len(v["joints"])
        fig, axes = plt.subplots(n, 1 + len(map_names), figsize=(2.6 * (1 + len(map_names)), 2.6 * n),
                                 squeeze=False)
        for r in range(n):
            j = int(v["joints"][r])
            qx, qy = (v["kpts1"][r] * stride).tolist()
            ax = axes[r, 0]
            ax.imshow(i1)
            ax.plot(qx, qy, "o", ms=7, mfc="none", mec="lime", mew=2)
            ax.set_title(f"I1 query: {names[j]}", fontsize=8)
            for c, name in enumerate(map_names, start=1):
                m = v["maps"][name][r].numpy()
                ax = axes[r, c]
                ax.imshow(i2)
                h2, w2 = i2.shape[:2]   # cell i is centred on pixel stride * i
                ax.imshow(np.kron(m, np.ones((stride, stride))), cmap="jet", alpha=0.5,
                          extent=(-stride / 2, w2 - stride / 2, h2 - stride / 2, -stride / 2))
                ay, axx = np.unravel_index(int(m.argmax()), m.shape)
                ax.plot(axx * stride, ay * stride, "x", ms=7, c="white", mew=2)
                if bool(v["present"][r]):
                    tx, ty = (v["target_xy"][r] * stride).tolist()
                    ax.plot(tx, ty, "o", ms=7, mfc="none", mec="lime", mew=2)
                    status = "target o, argmax x"
                else:
                    status = "absent in I2"
                ax.set_title(f"{name} max {m.max():.2f} ({status})", fontsize=8)
                ax.set_xlim(-0.5, i2.shape[1] - 0.5)
                ax.set_ylim(i2.shape[0] - 0.5, -0.5)
        for ax in axes.flat:
            ax.axis("off")
        fig.suptitle(f"{self.stage_name} epoch {self.current_epoch}", fontsize=9)
        fig.tight_layout()
        path = None
        if self.figure_dir is not None:
            self.figure_dir.mkdir(parents=True, exist_ok=True)
            path = self.figure_dir / f"epoch_{self.current_epoch:03d}.png"
            fig.savefig(path, dpi=80)
        for lg in self.loggers:
            if type(lg).__name__ == "WandbLogger" and path is not None:
                lg.log_image(key="val/affinity_maps", images=[str(path)], step=self.global_step)
        plt.close(fig)
        return path


class SiameseModule(CorrespondenceModule):
    """Siamese matching module trained with eq. 4 (see the module docstring for metrics and contract).

    net: {"siamese": SiameseNet kwargs, "refinement": None}; input_size: pair size (for the loader);
    optim: lr, weight_decay, milestones, gamma, time_milestones (Adam, lr drops per epoch:
    ``lightning_modules.schedule``); loss:
    include_absent; vis: every_n_epochs, queries; joint_layout: "coco" | "posetrack".
    """

    stage_name = "siamese"

    def __init__(self, net: dict | None = None, input_size: int = 256, stride: int = 4,
                 optim: dict | None = None, loss: dict | None = None, vis: dict | None = None,
                 joint_layout: str = "coco", stage: str = "siamese"):
        # ``stage`` is saved for corrtrack.checkpoints (and handed back by load_from_checkpoint); fixed here
        super().__init__(optim, loss, vis)
        self.siamese = SiameseNet(**dict((net or {}).get("siamese") or {}))
        self.refinement = None
        self._save_hparams(input_size, stride, joint_layout)

    def maps(self, batch: dict) -> dict:
        f1, f2 = self.siamese.forward_pair(batch["image1"], batch["image2"])
        a = corr.affinity(corr.extract_descriptors(f1, batch["kpts1"], batch["query_valid"],
                                                   self.siamese.descriptor), f2)
        log_s = corr.log_softmax_maps(a.float())
        return {"loss": self.bce(log_s, batch, "log_prob"), "probs": log_s.exp()}
