"""PoseEstimatorModule: training and COCO-keypoint-AP validation of the two-stage pose net (§6.1).

Thin glue: the network is ``corrtrack.nets.pose.PoseNet`` (built from the ``net`` hyper-parameters so a
checkpoint is self-describing: ``corrtrack.pose.PoseEstimator.from_checkpoint`` rebuilds it without
Lightning), decoding and flip test are ``corrtrack.pose``, COCOeval is ``corrtrack.evaluation.coco``.

Loss, per stage (intermediate supervision), weighted by ``stage_weights``:
    heatmap_weight * BCE-with-logits(heatmaps, targets)  (mean over joints with weight > 0 and pixels)
  + offset_weight  * L1(offsets, targets)                 (mean over the cells inside each joint's disk)

Validation: every crop is decoded (flip test by default) and mapped back to image pixels; rank 0 runs
COCOeval over the gathered predictions (OKS-NMS first when the boxes are detections) and the numbers
are broadcast, so ``val/coco_ap`` can be monitored under DDP. ``validation_step`` returns the decoded
crop poses, from which ``callbacks.figures.PoseFigure`` draws its contact sheet.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from corrtrack.keypoints import POSETRACK_UNUSED_SLOTS, layout as keypoint_layout
from corrtrack.nets.pose import PoseNet
from corrtrack.oks import oks_nms
from corrtrack.pose import (DEFAULT_INPUT_SIZE, DEFAULT_VOTE_RADIUS, crop_to_image, decode, flip_test_decode,
                            pose_score)
from lightning_modules.perf import PerfSettings


class PoseEstimatorModule(PerfSettings, pl.LightningModule):
    """Top-down pose estimator.

    Args:
        net: ``PoseNet`` keyword arguments (num_joints, width, trunk_stride, upsample, ...).
        layout: keypoint layout of the data and outputs (``"coco"`` | ``"posetrack"``).
        input_size: (H, W) crop size; padding: box enlargement of the crops (both saved for inference).
        lr, weight_decay, milestones (epochs), gamma: Adam with MultiStepLR.
        heatmap_weight, offset_weight, stage_weights: loss weights.
        flip_test: flip test in validation (and the default of ``PoseEstimator.from_checkpoint``).
        oks_nms: OKS threshold of the NMS applied to validation predictions from detection boxes (None: off).
        vote_radius: decoding in validation and inference (``corrtrack.pose.decode``; saved for
            ``PoseEstimator.from_checkpoint``).
        stage: the training stage, "pose" or "finetune" (saved for ``corrtrack.checkpoints.stage_of``).
    """

    def __init__(self, net: dict, layout: str = "coco", input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
                 padding: float = 1.25, lr: float = 1e-3, weight_decay: float = 0.0,
                 milestones: Sequence[int] = (200,), gamma: float = 0.1, heatmap_weight: float = 1.0,
                 offset_weight: float = 1.0, stage_weights: Sequence[float] = (1.0, 1.0),
                 flip_test: bool = True, oks_nms: float | None = None, stage: str = "pose",
                 vote_radius: float = DEFAULT_VOTE_RADIUS):
        super().__init__()
        self.save_hyperparameters()
        self.hparams["net"] = dict(net)
        self.hparams["input_size"] = [int(v) for v in input_size]
        self.net = PoseNet(**dict(net))
        self.flip_perm = keypoint_layout(layout)["flip_perm"]
        self.sigmas = keypoint_layout(layout)["sigmas"]
        self._val_preds: list[dict[str, np.ndarray]] = []

    def forward(self, x: Tensor) -> dict[str, list[Tensor]]:
        return self.net(x)

    # -- loss ---------------------------------------------------------------------------------------
    def compute_loss(self, out: dict[str, list[Tensor]], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Sum over stages of the weighted heatmap BCE and offset L1; also the last stage's terms."""
        hp = self.hparams
        w = batch["weights"].float()                                   # (B, J)
        mask = batch["offset_mask"].float() * w[:, :, None, None]      # (B, J, h, w)
        n_heat = w.sum().clamp(min=1.0) * batch["heatmaps"].shape[-1] * batch["heatmaps"].shape[-2]
        n_off = mask.sum().clamp(min=1.0) * 2.0
        total = out["heatmaps"][0].new_zeros(())
        terms = {}
        for s, (hm, off) in enumerate(zip(out["heatmaps"], out["offsets"])):
            if hm.shape[-2:] != batch["heatmaps"].shape[-2:]:
                raise ValueError(f"net output {tuple(hm.shape[-2:])} != target grid "
                                 f"{tuple(batch['heatmaps'].shape[-2:])}: data.input_size vs net stride")
            bce = F.binary_cross_entropy_with_logits(hm, batch["heatmaps"], reduction="none")
            heat = (bce * w[:, :, None, None]).sum() / n_heat
            l1 = ((off - batch["offsets"]).abs() * mask[:, :, None]).sum() / n_off
            total = total + float(hp.stage_weights[s]) * (hp.heatmap_weight * heat + hp.offset_weight * l1)
            terms = {"heatmap_loss": heat, "offset_loss": l1}
        return {"loss": total, **terms}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.net(batch["image"])
        losses = self.compute_loss(out, batch)
        bs = batch["image"].shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=bs)
        self.log("train/heatmap_loss", losses["heatmap_loss"], batch_size=bs)
        self.log("train/offset_loss", losses["offset_loss"], batch_size=bs)
        return losses["loss"]

    # -- validation ---------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_preds = []

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, np.ndarray]:
        """Decodes and keeps the batch's poses (image pixels); returns ``crop_poses`` (B, J, 3) in crop
        pixels for callbacks."""
        x = batch["image"]
        n = x.shape[0]
        stride = int(self.net.stride)
        out = self.net(torch.cat([x, x.flip(-1)]) if self.hparams.flip_test else x)
        first = {k: [t[:n] for t in v] for k, v in out.items()}
        if batch["weights"].sum() > 0:
            self.log("val/loss", self.compute_loss(first, batch)["loss"], batch_size=n, sync_dist=True)
        hm = torch.sigmoid(out["heatmaps"][-1].float())
        off = out["offsets"][-1].float()
        if self.hparams.flip_test:
            crop_poses = flip_test_decode(hm[:n], off[:n], hm[n:], off[n:], stride, self.flip_perm,
                                          float(self.hparams.vote_radius))
        else:
            crop_poses = decode(hm, off, stride, float(self.hparams.vote_radius))
        crop_np = crop_poses.cpu().double().numpy()
        poses = crop_to_image(crop_np, batch["affine"].cpu().numpy())
        if self.hparams.layout == "posetrack":
            poses[:, list(POSETRACK_UNUSED_SLOTS)] = 0.0
        self._val_preds.append({"index": batch["index"].cpu().numpy(),
                                "image_id": batch["image_id"].cpu().numpy(), "poses": poses,
                                "box_score": batch["box_score"].cpu().double().numpy()})
        return {"crop_poses": crop_np}

    def _gather_predictions(self) -> dict[str, np.ndarray] | None:
        """All ranks' predictions on rank 0 (None elsewhere), deduplicated by crop index (a distributed
        sampler pads the last batch with repeats)."""
        local = {k: np.concatenate([p[k] for p in self._val_preds]) if self._val_preds else np.zeros(0)
                 for k in ("index", "image_id", "poses", "box_score")}
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            parts: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, local)
            if self.global_rank != 0:
                return None
            parts = [p for p in parts if len(p["index"])]
            if not parts:
                return local
            local = {k: np.concatenate([p[k] for p in parts]) for k in local}
        if len(local["index"]):
            _, first = np.unique(local["index"], return_index=True)
            local = {k: v[first] for k, v in local.items()}
        return local

    def coco_results(self, preds: dict[str, np.ndarray]) -> list[dict]:
        """COCO results (image pixels) from gathered predictions; OKS-NMS per image when configured."""
        if not len(preds["index"]):
            return []
        scores = pose_score(preds["poses"], preds["box_score"])
        keep = np.arange(len(scores))
        if self.hparams.oks_nms is not None:
            kept = []
            for img in np.unique(preds["image_id"]):
                idx = np.flatnonzero(preds["image_id"] == img)
                kept.extend(idx[oks_nms(preds["poses"][idx], scores[idx], self.sigmas,
                                        oks_threshold=float(self.hparams.oks_nms))])
            keep = np.sort(np.asarray(kept, dtype=np.int64))
        return [{"image_id": int(preds["image_id"][i]), "category_id": 1,
                 "keypoints": [float(v) for v in preds["poses"][i].reshape(-1)], "score": float(scores[i])}
                for i in keep]

    def on_validation_epoch_end(self) -> None:
        preds = self._gather_predictions()
        stats = None
        if self.global_rank == 0 and preds is not None:
            dm = getattr(self.trainer, "datamodule", None)
            if dm is not None and hasattr(dm, "coco_gt"):
                from corrtrack.evaluation.coco import coco_keypoint_eval

                stats = coco_keypoint_eval(dm.coco_gt, self.coco_results(preds), self.sigmas,
                                           image_ids=sorted({int(i) for i in preds["image_id"]}))
        stats = self.trainer.strategy.broadcast(stats, src=0)
        if stats is not None:
            # every rank logs the broadcast value (sync_dist only averages equal numbers)
            self.log("val/coco_ap", stats["ap"], prog_bar=True, sync_dist=True)
            self.log("val/coco_ap50", stats["ap50"], sync_dist=True)
            self.log("val/coco_ap75", stats["ap75"], sync_dist=True)
            self.log("val/coco_ar", stats["ar"], sync_dist=True)
        self._val_preds = []

    # -- optimisation -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # perf settings (lightning_modules.perf) before DDP wraps the module: DDP lays its gradient buckets
        # out like the parameters, and a layout changed later (in on_fit_start) made a resumed 2-process
        # run's first step reduce the gradients differently from the uninterrupted run's
        if stage == "fit":
            self.apply_perf_settings()

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(self.net.parameters(), lr=float(hp.lr), weight_decay=float(hp.weight_decay))
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(m) for m in hp.milestones],
                                                     gamma=float(hp.gamma))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
