"""Top-down person crops for the pose estimator (paper §6.1; docs/method.md), from COCO or PoseTrack files.

Every annotated person (training), every ground-truth person or every detection (validation) becomes
one ``input_size`` = (H, W) crop (384x288 by default) through ``geometry.crop_affine(box, (H, W),
padding)``; the crop's image->crop affine travels with the sample so predictions go back to image
pixels.

Training augmentation:
- box jitter (our geometry): the crop is zoomed by ``scale`` and its centre moved by ``shift`` (fraction
  of the box), rendered into a canvas with a margin around the final crop;
- random horizontal flips and rotations (albumentations ``HorizontalFlip`` / ``Affine`` on the canvas,
  then ``CenterCrop`` to (H, W), so rotated corners hold real image content); a flip swaps left and
  right joints with the layout's ``flip_perm``; colour jitter and blur (albumentations).
Targets (``corrtrack.pose.encode_targets``): per joint a disk (or Gaussian) heatmap of ``radius`` output
cells and the offsets from each cell within the radius to the joint, on the stride-``s`` output grid.

Randomness is a function of (seed, epoch, index) (``datamodules.sampling``): the training sampler yields
``(epoch, index)`` and each crop draws from its own generator, so a resumed run sees exactly the crops an
uninterrupted one would; validation crops are deterministic.

COCOeval lives in ``corrtrack.evaluation.coco``; detection files are read by
``corrtrack.posetrack.load_detections``.
"""
from __future__ import annotations

import albumentations as A  # module level: a first import in a forked worker trips wandb's import hook
import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from corrtrack import geometry
from corrtrack.evaluation.coco import build_coco_gt
from corrtrack.imageio import read_rgb
from corrtrack.keypoints import NUM_JOINTS, layout as keypoint_layout
from corrtrack.pose import DEFAULT_INPUT_SIZE, DEFAULT_PADDING, encode_targets, to_input_tensor
from corrtrack.posetrack import load_detections
from datamodules.sources import ImageRecord, dataset_root, first_readable, load_records
from datamodules.augment import augment_from_config
from datamodules.sampling import sample_rng, split_key, train_sampler
from datamodules.workers import loader_settings, worker_init

log = logging.getLogger(__name__)

@dataclass
class TopDownAugment:
    """Training augmentation of person crops.

    flip_prob: horizontal flip probability (joints swapped left/right); max_rotate: degrees, rotation
    uniform in [-r, r] with probability rotate_prob; scale: (lo, hi) zoom-out of the box (> 1 = more
    context), log-uniform; shift: box-centre jitter, uniform in [-t, t] * box size per axis;
    color_prob / blur_prob: probability of colour jitter / Gaussian or motion blur; margin: canvas margin
    around the crop, fraction of each side (rotated corners come from real pixels inside it).
    """
    flip_prob: float = 0.5
    max_rotate: float = 40.0
    rotate_prob: float = 0.6
    scale: tuple[float, float] = (0.75, 1.25)
    shift: float = 0.1
    color_prob: float = 0.5
    blur_prob: float = 0.1
    margin: float = 0.25

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "TopDownAugment":
        return augment_from_config(cls, cfg, tuple_keys=("scale",))


@dataclass
class Instance:
    """One crop: record index, box [x, y, w, h], box score, index of the GT person (-1 = detection)."""
    record: int
    box: np.ndarray
    score: float
    person: int


class TopDownDataset(Dataset):
    """Person crops from ``ImageRecord``s.

    ``__getitem__`` returns numpy arrays: image (3, H, W) float32 normalised RGB; heatmaps (J, h, w),
    offsets (J, 2, h, w), offset_mask (J, h, w), weights (J,) float32 targets (zeros / weight 0 for a
    detection crop); keypoints (J, 3) x, y, v in crop pixels; affine (2, 3) float64 image->crop;
    image_id, index int64; box_score float32.

    Args:
        records: annotated images (``datamodules.sources``).
        input_size: (H, W), divisible by ``stride``.
        stride: output stride of the net (target grid).
        layout: ``"coco"`` | ``"posetrack"`` (flip permutation).
        train: augment and draw fresh randomness per sample; otherwise plain deterministic crops.
        detections: validation boxes per image id ``{image_id: (N, 5) [x, y, w, h, score]}`` (as
            ``corrtrack.posetrack.load_detections`` returns them); None = GT boxes.
        min_keypoints: persons with fewer labeled joints are skipped (GT instances).
    """

    def __init__(self, records: Sequence[ImageRecord], input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
                 stride: int = 8, layout: str = "coco", train: bool = True, padding: float = DEFAULT_PADDING,
                 augment: TopDownAugment | None = None, target_kind: str = "disk", radius: float = 2.0,
                 unlabeled_weight: float = 0.0, detections: Mapping[int, Sequence] | None = None,
                 min_keypoints: int = 1, seed: int = 0):
        self.records = list(records)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if self.input_size[0] % stride or self.input_size[1] % stride:
            raise ValueError(f"data.input_size {self.input_size} must be divisible by the net's stride "
                             f"{stride}")
        self.stride = int(stride)
        self.layout = layout
        self.flip_perm = keypoint_layout(layout)["flip_perm"]
        self.train = bool(train)
        self.padding = float(padding)
        self.aug = augment or TopDownAugment()
        self.target_kind, self.radius = target_kind, float(radius)
        self.unlabeled_weight = float(unlabeled_weight)
        self.seed = int(seed)
        self.instances = self._instances(detections, int(min_keypoints))
        if not self.instances:
            raise ValueError(f"TopDownDataset: no person crops in {len(self.records)} images "
                             f"(check the dataset root, split and detection file)")
        self._tf: Any = None

    def _instances(self, detections, min_keypoints: int) -> list[Instance]:
        out = []
        for r, rec in enumerate(self.records):
            if detections is not None:
                for det in detections.get(rec.image_id, ()):
                    out.append(Instance(r, np.array(det[:4], np.float64), float(det[4]), -1))
                continue
            for p in range(len(rec.keypoints)):
                box = np.asarray(rec.boxes[p], np.float64)
                if int((rec.keypoints[p, :, 2] > 0).sum()) < min_keypoints or box[2] <= 1 or box[3] <= 1:
                    continue
                out.append(Instance(r, box, 1.0, p))
        return out

    def __len__(self) -> int:
        return len(self.instances)

    # -- augmentation -------------------------------------------------------------------------------
    def _rng(self, epoch: int, index: int) -> np.random.Generator:
        if self.train:
            return sample_rng(self.seed, epoch, index, 0x70D)
        return np.random.default_rng([self.seed, index, 0x70DE])

    def _transform(self):
        if self._tf is None:
            import cv2

            a = self.aug
            h, w = self.input_size
            self._tf = A.Compose([
                A.HorizontalFlip(p=a.flip_prob),
                A.Affine(rotate=(-a.max_rotate, a.max_rotate), p=a.rotate_prob if a.max_rotate > 0 else 0.0,
                         border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.CenterCrop(h, w),
                A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=a.color_prob),
                A.OneOf([A.GaussianBlur(blur_limit=(3, 5), p=1.0), A.MotionBlur(blur_limit=(3, 7), p=1.0)],
                        p=a.blur_prob),
            ], keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
                save_applied_params=True)
        return self._tf

    def augment_crop(self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
        """A training crop of ``box`` with jitter, flip and rotation: returns the (H, W, 3) crop, the
        (J, 3) keypoints in crop pixels (joints swapped when flipped) and whether it was flipped."""
        a = self.aug
        h, w = self.input_size
        lo, hi = a.scale
        scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)
        shift = rng.uniform(-a.shift, a.shift, 2) if a.shift > 0 else np.zeros(2)
        m = geometry.crop_affine(box, (h, w), self.padding, scale=scale,
                                 shift=(float(shift[0]), float(shift[1])))
        mx, my = int(round(a.margin * w)), int(round(a.margin * h))
        m[:, 2] += (mx, my)                       # the crop sits centred in a (h + 2my, w + 2mx) canvas
        canvas = geometry.warp_image(image, m, (h + 2 * my, w + 2 * mx))
        kp = np.asarray(keypoints, np.float64).copy()
        kp[:, :2] = geometry.warp_points(kp[:, :2], m)
        tf = self._transform()
        tf.set_random_seed(int(rng.integers(0, 2 ** 31 - 1)))
        res = tf(image=canvas, keypoints=kp[:, :2].astype(np.float32))
        flipped = any(name == "HorizontalFlip" for name, _ in res["applied_transforms"])
        out = kp.copy()
        out[:, :2] = np.asarray(res["keypoints"], np.float64).reshape(-1, 2)
        if flipped:
            out = out[self.flip_perm]
        return res["image"], out, flipped

    # -- one crop -----------------------------------------------------------------------------------
    def _load(self, index: int) -> tuple[int, np.ndarray, list[str]]:
        """(instance index, image, unreadable files passed over). Training skips an unreadable image for
        the next readable instance (its targets must match its pixels; ``MAX_UNREADABLE_IN_A_ROW`` in a
        row stop the run); validation keeps every instance and scores a blank frame for an unreadable one."""
        path_of = lambda i: self.records[self.instances[i].record].path  # noqa: E731
        if self.train:
            return first_readable(index, len(self.instances), path_of)
        rec = self.records[self.instances[index].record]
        try:
            return index, read_rgb(rec.path), []
        except OSError as e:
            log.warning("validation: scoring a blank frame for an unreadable image: %s", e)
            return index, np.zeros((rec.height, rec.width, 3), np.uint8), [str(rec.path)]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Crop ``index`` (a plain index, or the ``(epoch, index)`` the training sampler yields)."""
        epoch, index = split_key(key)
        used, img, skipped = self._load(index)
        inst = self.instances[used]
        rec = self.records[inst.record]
        j = NUM_JOINTS
        kp = (np.asarray(rec.keypoints[inst.person], np.float64) if inst.person >= 0
              else np.zeros((j, 3)))
        if self.train:
            crop, kp_c, _ = self.augment_crop(img, inst.box, kp, self._rng(epoch, index))
            m = np.full((2, 3), np.nan)           # augmented crops are not mapped back
        else:
            m = geometry.crop_affine(inst.box, self.input_size, self.padding)
            crop = geometry.warp_image(img, m, self.input_size)
            kp_c = kp.copy()
            kp_c[:, :2] = geometry.warp_points(kp[:, :2], m)
        kp_c[kp_c[:, 2] <= 0, :2] = 0.0
        t = encode_targets(kp_c, self.input_size, self.stride, self.radius, self.target_kind,
                           self.unlabeled_weight)
        if inst.person < 0:
            t["weights"][:] = 0.0
        return {
            "image": to_input_tensor(crop)[0].numpy(),
            **t,
            "keypoints": kp_c.astype(np.float32),
            "affine": m.astype(np.float64),
            "image_id": np.int64(rec.image_id),
            "box_score": np.float32(inst.score),
            "index": np.int64(index),
            "skipped": skipped,
        }


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into tensors (every field has a fixed shape); ``skipped``: the unreadable image files
    passed over (list of str)."""
    out: dict[str, Any] = {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]
                           if k != "skipped"}
    out["skipped"] = [p for s in samples for p in s.get("skipped", ())]
    return out


# ------------------------------------------------------------------------------------------------
# DataModule
# ------------------------------------------------------------------------------------------------
class TopDownDataModule(pl.LightningDataModule):
    """Top-down crops from the ``data`` section of a pose config.

    Reads ``layout`` records ("coco": ``person_keypoints_{split}2017.json`` through pycocotools;
    "posetrack": labeled frames of the PoseTrack 2018 files) from the configured roots (``synth`` = the
    synthetic world, generated on first use). Validation crops come from GT boxes, or from
    ``data.det_file`` (COCO results JSON) with score >= ``data.det_min_score``; at most
    ``val_max_images`` evenly spaced images. ``coco_gt`` / ``val_image_ids`` / ``sigmas`` serve COCOeval.
    """

    def __init__(self, data_cfg, layout: str = "coco", stride: int = 8, target_kind: str = "disk",
                 radius: float = 2.0, unlabeled_weight: float = 0.0, seed: int = 0):
        super().__init__()
        self.cfg = data_cfg
        self.layout = layout
        self.stride = int(stride)
        self.target_kind, self.radius = target_kind, float(radius)
        self.unlabeled_weight = float(unlabeled_weight)
        self.seed = int(seed)
        self.resume_position: tuple[int, int] | None = None   # (epoch, batches done): set on resume
        self.train_set: TopDownDataset | None = None
        self.val_set: TopDownDataset | None = None
        self._coco_gt = None

    @property
    def input_size(self) -> tuple[int, int]:
        s = self.cfg.input_size
        return (int(s[0]), int(s[1]))

    @property
    def sigmas(self) -> np.ndarray:
        return keypoint_layout(self.layout)["sigmas"]

    def _records(self, split: str, cap) -> list[ImageRecord]:
        records = load_records(self.cfg, split, self.layout)
        if cap and len(records) > int(cap):
            pick = np.unique(np.linspace(0, len(records) - 1, int(cap)).round().astype(int))
            records = [records[i] for i in pick]
        return records

    def _dataset(self, records: list[ImageRecord], train: bool, detections=None) -> TopDownDataset:
        c = self.cfg
        return TopDownDataset(records, self.input_size, self.stride, self.layout, train=train,
                              padding=float(c.padding), augment=TopDownAugment.from_config(c.get("augment")),
                              target_kind=self.target_kind, radius=self.radius,
                              unlabeled_weight=self.unlabeled_weight, detections=detections,
                              min_keypoints=int(c.get("min_keypoints", 1)) if train else 1, seed=self.seed)

    def prepare_data(self) -> None:
        dataset_root(self.cfg, self.cfg.train_format)  # generates the synthetic world once, before DDP workers read it

    def setup(self, stage: str | None = None) -> None:
        c = self.cfg
        if self.train_set is None and stage in (None, "fit"):
            records = self._records(c.train_split, c.get("train_max_images"))
            self.train_set = self._dataset(records, train=True)
        if self.val_set is None and stage in (None, "fit", "validate"):
            records = self._records(c.val_split, c.get("val_max_images"))
            dets = load_detections(c.det_file, float(c.det_min_score)) if c.get("det_file") else None
            self.val_set = self._dataset(records, train=False, detections=dets)

    @property
    def val_image_ids(self) -> list[int]:
        return [int(r.image_id) for r in self.val_set.records]

    @property
    def coco_gt(self):
        """Ground truth of the validation images for COCOeval (built on first use). For the COCO layout
        the official annotation file is used (crowd regions and all), else the records in memory."""
        if self._coco_gt is None:
            if self.layout == "coco":
                from pycocotools.coco import COCO
                from datamodules.sources import _coco_split_paths

                coco_root = dataset_root(self.cfg, "coco")
                ann, _ = _coco_split_paths(Path(coco_root), str(self.cfg.val_split))
                with contextlib.redirect_stdout(io.StringIO()):
                    self._coco_gt = COCO(str(ann))
            else:
                self._coco_gt = build_coco_gt(self.val_set.records, self.layout)
        return self._coco_gt

    def _loader(self, ds: TopDownDataset, shuffle: bool) -> DataLoader:
        nw, pin = loader_settings(self.cfg)
        bs = int(self.cfg.batch_size)
        if not shuffle and self.cfg.get("val_batch_size"):
            bs = int(self.cfg.val_batch_size)
        sampler = train_sampler(self, ds, self.seed) if shuffle else None
        return DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=nw, collate_fn=collate,
                          pin_memory=pin, drop_last=shuffle and len(ds) >= bs,
                          persistent_workers=nw > 0, worker_init_fn=worker_init if nw > 0 else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
