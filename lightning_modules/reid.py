"""ReIDModule: trains a person re-ID net with the strong-baseline recipe, validates rank-1 / mAP.

Thin glue: the net is ``corrtrack.nets.reid`` (built from the ``net`` hyper-parameters), the metrics are
``corrtrack.reid.retrieval_metrics``, inference is ``corrtrack.reid.ReIDEmbedder``.

Loss (Luo et al. 2019, "Bag of tricks and a strong baseline for deep person re-ID"):
    id_weight * cross-entropy(logits, identity; label smoothing eps)     on the BNNeck embeddings
  + triplet_weight * batch-hard triplet(features, identity; margin)    on the features before the BNNeck
Batches are P identities x K instances (``datamodules.reid.PKSampler``), so every anchor has a hardest
positive (same identity, farthest) and a hardest negative (other identity, closest) in its batch.

Optimiser: Adam, learning rate warmed up linearly from ``warmup_factor`` x lr over ``warmup_epochs``
(per step), then multiplied by ``gamma`` at each epoch milestone (or, with ``trainer.max_time``, once the
share ``time_milestones[k]`` of the time budget has passed: ``lightning_modules.schedule``).

Validation: embeddings (BNNeck, L2-normalised, as ``ReIDEmbedder`` computes them) of every held-out crop;
every crop queries all others by cosine distance, the crops of its own frame excluded. Logged per epoch:
``val/reid_rank1``, ``val/reid_map`` (gallery: all held-out videos) and ``val/reid_map_video`` (gallery:
the query's own video only, the tracker's situation). Every rank embeds every crop, so all ranks log
the same numbers (a checkpoint can monitor them under DDP).

Checkpoint contract (``ReIDEmbedder.from_checkpoint`` relies on it): ``hparams["stage"] == "reid"``,
``hparams["net"]`` the net's constructor kwargs (``arch`` included), ``hparams["input_size"]`` (H, W),
``hparams["padding"]``; weights under ``net.``.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from corrtrack.nets.reid import build_reid_net
from corrtrack.reid import retrieval_metrics
from lightning_modules.perf import PerfSettings
from lightning_modules.schedule import elapsed_share

log = logging.getLogger(__name__)

DEFAULT_LOSS = {"id_weight": 1.0, "label_smoothing": 0.1, "triplet_weight": 1.0, "margin": 0.3}
DEFAULT_OPTIM = {"lr": 3.5e-4, "weight_decay": 5e-4, "warmup_epochs": 10.0, "warmup_factor": 0.1,
                 "milestones": [40, 70], "gamma": 0.1, "time_milestones": []}


def batch_hard_triplet_loss(features: Tensor, labels: Tensor, margin: float = 0.3
                            ) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-hard triplet loss (Hermans et al. 2017) on Euclidean distances.

    features: (B, D); labels: (B,) identities. For each anchor the hardest positive is the farthest
    crop of its identity (itself excluded), the hardest negative the closest crop of another identity;
    loss = mean over anchors having both of max(0, d(a, p) - d(a, n) + margin).
    Returns (loss, d_ap (B,), d_an (B,)) (NaN distances for anchors lacking a positive / negative)."""
    f = features.float()
    d2 = (f[:, None, :] - f[None, :, :]).pow(2).sum(-1)
    dist = d2.clamp(min=1e-12).sqrt()     # the clamp keeps the gradient of sqrt finite at 0
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    d_ap = torch.where(pos, dist, torch.full_like(dist, -1.0)).max(dim=1).values
    d_an = torch.where(neg, dist, torch.full_like(dist, float("inf"))).min(dim=1).values
    ok = pos.any(1) & neg.any(1)
    # mean over the anchors having both, without `ok.any()` or boolean indexing (a host sync each on GPU)
    per = torch.where(ok, F.relu(d_ap - d_an + margin), torch.zeros_like(d_ap))
    loss = per.sum() / ok.sum().clamp(min=1)
    nan = torch.full_like(d_ap, float("nan"))
    return loss, torch.where(pos.any(1), d_ap, nan), torch.where(neg.any(1), d_an, nan)


def reid_validation_metrics(embeddings: np.ndarray, labels: np.ndarray, videos: np.ndarray,
                            frames: np.ndarray) -> dict[str, float]:
    """Rank-1 / mAP of held-out crops, each querying all the others by cosine distance.

    embeddings: (N, D) L2-normalised; labels, videos, frames: (N,) identity, video index and frame
    number of each crop. Crops of the query's own frame (the query included) are ignored. Returns
    ``rank1``, ``map`` (gallery: every video) and ``map_video`` / ``rank1_video`` (gallery: the query's
    own video)."""
    e = torch.as_tensor(np.asarray(embeddings, np.float32))
    dist = (1.0 - e @ e.T).numpy()
    same_frame = (videos[:, None] == videos[None, :]) & (frames[:, None] == frames[None, :])
    every = retrieval_metrics(dist, labels, labels, ignore=same_frame)
    own = retrieval_metrics(dist, labels, labels, ignore=same_frame | (videos[:, None] != videos[None, :]))
    return {"rank1": every["rank1"], "map": every["map"], "rank1_video": own["rank1"],
            "map_video": own["map"], "num_queries": every["num_queries"]}


class ReIDModule(PerfSettings, pl.LightningModule):
    """Person re-ID training (identity + batch-hard triplet loss, BNNeck).

    Args:
        net: ``corrtrack.nets.reid.build_reid_net`` keyword arguments (``arch``, ``num_classes`` = the
            training identities, ``width``, ``last_stride``, ...).
        input_size: (H, W) crop size; padding: box enlargement of the crops (both saved for inference).
        loss: ``id_weight``, ``label_smoothing``, ``triplet_weight``, ``margin`` (defaults: the recipe's).
        optim: ``lr``, ``weight_decay``, ``warmup_epochs``, ``warmup_factor``, ``milestones`` (epochs),
            ``gamma``, ``time_milestones`` (shares of ``trainer.max_time``).
    """

    def __init__(self, net: dict, input_size: Sequence[int] = (256, 128), padding: float = 1.1,
                 loss: dict | None = None, optim: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.hparams["stage"] = "reid"
        self.hparams["net"] = dict(net)
        self.hparams["input_size"] = [int(v) for v in input_size]
        self.hparams["loss"] = {**DEFAULT_LOSS, **dict(loss or {})}
        self.hparams["optim"] = {**DEFAULT_OPTIM, **dict(optim or {})}
        self.net = build_reid_net(**dict(net))
        if self.net.num_classes < 2:
            raise ValueError(f"ReIDModule: the net needs a classifier over >= 2 training identities "
                             f"(net.num_classes = {self.net.num_classes})")
        self._val: list[dict[str, np.ndarray]] = []

    def forward(self, x: Tensor) -> dict[str, Tensor | None]:
        return self.net(x)

    @torch.no_grad()
    def embed(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) normalised crops -> (B, D) L2-normalised embeddings (the net in eval mode)."""
        return F.normalize(self.net.embed(x).float(), dim=1)

    # -- loss ---------------------------------------------------------------------------------------
    def compute_loss(self, out: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
        c = self.hparams["loss"]
        id_loss = F.cross_entropy(out["logits"].float(), labels, label_smoothing=float(c["label_smoothing"]))
        tri, d_ap, d_an = batch_hard_triplet_loss(out["features"], labels, float(c["margin"]))
        total = float(c["id_weight"]) * id_loss + float(c["triplet_weight"]) * tri
        acc = (out["logits"].argmax(1) == labels).float().mean()
        return {"loss": total, "id_loss": id_loss, "triplet_loss": tri, "id_acc": acc,
                "triplet_active": ((d_ap - d_an + float(c["margin"])) > 0).float().nanmean()}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x = batch["image"]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        losses = self.compute_loss(self.net(x), batch["label"])
        bs = x.shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=bs)
        self.log("train/loss_epoch", losses["loss"], batch_size=bs, on_step=False, on_epoch=True)
        for k in ("id_loss", "triplet_loss", "id_acc", "triplet_active"):
            self.log(f"train/{k}", losses[k], batch_size=bs)
        return losses["loss"]

    # -- validation ---------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        x = batch["image"]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self._val.append({"embeddings": self.embed(x).cpu().numpy(),
                          **{k: batch[k].cpu().numpy() for k in ("label", "video", "frame", "index")}})

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        v = {k: np.concatenate([b[k] for b in self._val]) for k in self._val[0]}
        self._val = []
        _, first = np.unique(v["index"], return_index=True)   # a repeated crop would be its own positive
        v = {k: a[first] for k, a in v.items()}
        m = reid_validation_metrics(v["embeddings"], v["label"], v["video"], v["frame"])
        if not m["num_queries"]:
            log.warning("re-ID validation: no query has a positive in its gallery (too few held-out crops?)")
            return
        # every rank embedded every crop, so the numbers agree; sync_dist only averages equal values
        self.log("val/reid_rank1", m["rank1"], prog_bar=True, sync_dist=True)
        self.log("val/reid_map", m["map"], prog_bar=True, sync_dist=True)
        self.log("val/reid_rank1_video", m["rank1_video"], sync_dist=True)
        self.log("val/reid_map_video", m["map_video"], sync_dist=True)

    # -- optimisation -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # perf settings (lightning_modules.perf) before DDP wraps the module: DDP lays its gradient buckets
        # out like the parameters, and a layout changed later (in on_fit_start) made a resumed 2-process
        # run's first step reduce the gradients differently from the uninterrupted run's
        if stage == "fit":
            self.apply_perf_settings()

    def configure_optimizers(self):
        o = self.hparams["optim"]
        params = [p for p in self.net.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=float(o["lr"]), weight_decay=float(o["weight_decay"]))
        sched = warmup_multistep(opt, lambda: self._trainer, float(o["warmup_epochs"]),
                                 float(o["warmup_factor"]), o["milestones"], float(o["gamma"]),
                                 o.get("time_milestones") or [])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def warmup_multistep(opt: torch.optim.Optimizer, trainer_getter, warmup_epochs: float, warmup_factor: float,
                     milestones: Sequence[int], gamma: float, time_milestones: Sequence[float] = ()
                     ) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: a linear warm-up from ``warmup_factor`` x lr to lr over ``warmup_epochs``
    (fractional epochs: steps / batches per epoch), then ``gamma`` ** (drops passed), a drop at each
    epoch in ``milestones`` or once the share ``time_milestones[k]`` of ``trainer.max_time`` has passed,
    whichever comes first. Without a trainer (unit use) the epoch is counted as 0 and the warm-up is in
    steps of 1/100 epoch."""
    ms = sorted(int(m) for m in milestones)
    ts = sorted(float(t) for t in time_milestones)
    if any(not 0.0 < t <= 1.0 for t in ts):
        raise ValueError(f"optim.time_milestones must be shares of trainer.max_time in (0, 1], got {ts}")
    state = {"time_drops": 0}

    def factor(step: int) -> float:
        trainer = trainer_getter()
        n = getattr(trainer, "num_training_batches", None) if trainer is not None else None
        per_epoch = max(1, int(n)) if n and n != float("inf") else 100   # inf/None before the data are set up
        progress = step / per_epoch
        epoch = int(trainer.current_epoch) if trainer is not None else 0
        warm = 1.0
        if warmup_epochs > 0 and progress < warmup_epochs:
            warm = warmup_factor + (1.0 - warmup_factor) * progress / warmup_epochs
        share = elapsed_share(trainer) if ts else None
        if share is not None:      # a passed time milestone stays passed
            state["time_drops"] = max(state["time_drops"], sum(share >= t for t in ts))
        drops = max(sum(epoch >= m for m in ms), state["time_drops"])
        return warm * float(gamma) ** drops

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)

