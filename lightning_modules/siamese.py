"""SiameseModule: trains the Siamese matching module on affine pairs (paper §4.1, §4.3, eq. 4).

Also holds what both correspondence stages share (``CorrespondenceModule``): optimiser and validation
metrics; ``validation_step`` returns its maps, from which ``callbacks.figures.AffinityFigure`` draws. The networks are ``corrtrack.nets`` modules; descriptors and
affinities are ``corrtrack.correspondence`` functions.

Checkpoint contract (``corrtrack.correspondence.load_correspondence_checkpoint`` relies on it): the
nets are the attributes ``siamese`` and ``refinement``; ``hparams["net"]`` = {"siamese": SiameseNet
kwargs, "refinement": RefinementNet kwargs or None}; ``hparams["input_size"]`` the training pair size;
``hparams["stride"]`` 4; ``hparams["joint_layout"]`` the layout of the 17 training slots ("coco" or
"posetrack"; the refinement net's channels follow it); ``hparams["stage"]`` the stage ("siamese" |
"refine", what ``corrtrack.checkpoints.stage_of`` reads).

Metrics (keys namespaced by ``train/`` and ``val/``):
- ``train/loss``, ``val/loss``: eq. 4 (resp. 5), summed over the pixels of a map, averaged over the
  queried keypoints (annotated and inside I1; truncated ones included, their target is all zero).
- ``val/corr_pck``: share of queried keypoints present in I2 whose map argmax lies within one feature
  cell (Euclidean distance <= 1 cell = 4 input pixels) of the true warped position.
- ``val/absent_reject``: share of truncated keypoints whose map maximum is below 0.5. For the Siamese
  stage the map is the softmax S, whose maximum is < 0.5 whenever it is not confident of one cell — a
  weak notion of rejection (S sums to 1 and cannot say "absent"); the refinement stage's sigmoid C can.
"""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from corrtrack import correspondence as corr
from corrtrack.nets.correspondence import SiameseNet
from lightning_modules.perf import PerfSettings
from lightning_modules.schedule import budgeted_multistep

DEFAULT_OPTIM = {"lr": 1e-4, "weight_decay": 0.0, "milestones": [50], "gamma": 0.1, "time_milestones": []}
DEFAULT_LOSS = {"include_absent": True}


def pck_hits(maps: Tensor, target_xy: Tensor, threshold: float = 1.0) -> Tensor:
    """(N,) bool: the (plain, cell-level) argmax of each (N, h, w) map lies within ``threshold`` feature
    cells (Euclidean) of (N, 2) ``target_xy``."""
    xy = corr.maps_argmax(maps.float(), subpixel=False)[:, :2]
    return (xy - target_xy.float()).norm(dim=1) <= threshold


class CorrespondenceModule(PerfSettings, pl.LightningModule):
    """Shared training/validation logic of the two correspondence stages.

    Subclasses implement ``maps(batch) -> dict`` with ``loss`` (scalar: eq. 4 / 5 summed over pixels,
    averaged over the queried keypoints) and ``probs`` (B, P, J, h, w), the maps the metrics score (S or
    sigmoid(C)); optionally ``extra`` (name -> (B, P, J, h, w) maps) scored as ``val/<name>_pck`` (and
    shown by the figure callback).
    """

    include_absent: bool = True
    stage_name = "correspondence"

    def __init__(self, optim: dict | None, loss: dict | None) -> None:
        super().__init__()
        self.optim_cfg = {**DEFAULT_OPTIM, **dict(optim or {})}
        self.loss_cfg = {**DEFAULT_LOSS, **dict(loss or {})}
        self.include_absent = bool(self.loss_cfg["include_absent"])
        self._val: dict[str, Tensor] = {}

    def _save_hparams(self, input_size: int, stride: int, joint_layout: str, **extra: Any) -> None:
        """The checkpoint contract: ``net`` holds both nets' constructor kwargs."""
        ref = self.refinement.config() if self.refinement is not None else None
        self.save_hyperparameters({"stage": self.stage_name,
                                   "net": {"siamese": self.siamese.config(), "refinement": ref},
                                   "input_size": int(input_size), "stride": int(stride),
                                   "optim": self.optim_cfg, "loss": self.loss_cfg,
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
            # every slot scored, the present ones averaged: no boolean indexing nor `pres.any()`, each of
            # which would wait for the GPU at every step (a batch with no present keypoint logs NaN)
            pres = batch["present"].reshape(-1)
            probs = out["probs"]
            hits = pck_hits(probs.reshape(-1, *probs.shape[-2:]), batch["target_xy"].reshape(-1, 2)) & pres
            self.log("train/corr_pck", hits.sum().float() / pres.sum().float(), batch_size=bs)   # 0/0 = NaN
        return out["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val = {}

    def _acc(self, key: str, value: Tensor | float) -> None:
        v = torch.as_tensor(value, dtype=torch.float64, device=self.device).detach()
        self._val[key] = self._val.get(key, torch.zeros((), dtype=torch.float64, device=self.device)) + v

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        """Accumulates the metrics; returns the maps (``loss``, ``probs``, ``extra``) for callbacks."""
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
        return out

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

    # -- optimiser ------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # perf settings (lightning_modules.perf) before DDP wraps the module: DDP lays its gradient buckets
        # out like the parameters, and a layout changed later (in on_fit_start) made a resumed 2-process
        # run's first step reduce the gradients differently from the uninterrupted run's
        if stage == "fit":
            self.apply_perf_settings()

    def configure_optimizers(self):
        o = self.optim_cfg
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=float(o["lr"]), weight_decay=float(o.get("weight_decay", 0.0)))
        sched = budgeted_multistep(opt, lambda: self._trainer, o.get("milestones", []), float(o.get("gamma", 0.1)),
                                   o.get("time_milestones", []))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class SiameseModule(CorrespondenceModule):
    """Siamese matching module trained with eq. 4 (see the module docstring for metrics and contract).

    net: {"siamese": SiameseNet kwargs, "refinement": None}; input_size: pair size (for the loader);
    optim: lr, weight_decay, milestones, gamma, time_milestones (Adam, lr drops per epoch:
    ``lightning_modules.schedule``); loss:
    include_absent; joint_layout: "coco" | "posetrack".
    """

    stage_name = "siamese"

    def __init__(self, net: dict | None = None, input_size: int = 256, stride: int = 4,
                 optim: dict | None = None, loss: dict | None = None, joint_layout: str = "coco",
                 stage: str = "siamese"):
        # ``stage`` is saved for corrtrack.checkpoints (and handed back by load_from_checkpoint); fixed here
        super().__init__(optim, loss)
        self.siamese = SiameseNet(**dict((net or {}).get("siamese") or {}))
        self.refinement = None
        self._save_hparams(input_size, stride, joint_layout)

    def maps(self, batch: dict) -> dict:
        f1, f2 = self.siamese.forward_pair(batch["image1"], batch["image2"])
        a = corr.affinity(corr.extract_descriptors(f1, batch["kpts1"], batch["query_valid"],
                                                   self.siamese.descriptor), f2)
        log_s = corr.log_softmax_maps(a.float())
        return {"loss": self.bce(log_s, batch, "log_prob"), "probs": log_s.exp()}
