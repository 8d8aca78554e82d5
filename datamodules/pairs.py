"""Self-supervised affine pairs for the correspondence network (paper §4.3; docs/method.md).

Every annotated image becomes a training pair on the fly:

- ``I1`` = the image letterboxed to ``input_size`` x ``input_size`` (or, with probability
  ``augment.crop_prob``, a square crop around a random person), through the affine ``M1``;
- ``I2`` = a random affine warp ``M2`` of ``I1`` (translation, rotation, scale, horizontal mirror),
  rendered in one interpolation from the source image with ``M2 @ M1``; photometric jitter, blur and
  pasted occluder patches are applied to ``I2`` (optionally jitter to ``I1`` too);
- targets: for every person and every joint annotated (v > 0) and inside ``I1`` (``query_valid``), the
  warped position on the stride-4 feature grid of ``I2`` (``target_xy``, float) and its cell
  (``target_idx`` = row * W_f + col); -1 / ``present`` False when the warped point falls outside ``I2``
  (truncation: the ground-truth map is all zero).

A mirrored pair is a true mirror: the left wrist of ``I1`` corresponds to the mirrored position of the
same (left) wrist in ``I2``; labels are never swapped, since correspondence is about the same physical
point.

Optionally (``augment.temporal`` > 0, training only; an extension, not the paper) a share of the pairs
are two labeled frames of a PoseTrack-format training video, seen through the same crop: real limb
motion, occlusion and blur that no affine warp produces.

Coordinates. Image pixels have their centres at integer coordinates. The trunks use centred stride-2
operations (``corrtrack.nets.bninception``), so feature cell ``(r, c)`` of a stride-``s`` map is centred
on input pixel ``(s*c, s*r)``: ``feature = input / s`` and the cell holding a point is ``round(feature)``
(the frames of ``corrtrack.correspondence``; ``image_to_feature`` / ``feature_cell`` below). A warped
keypoint is present in ``I2`` when it lies inside the image and its cell inside the grid.

Randomness is a function of (seed, epoch, index) (``datamodules.sampling``): the training sampler yields
``(epoch, index)`` and each pair draws from its own generator, so the pairs do not depend on the worker
count and a resumed run sees exactly the pairs an uninterrupted one would; validation pairs use a fixed
seed per index, so validation metrics are comparable across epochs and runs.
"""
from __future__ import annotations

import albumentations as A  # module level: a first import in a forked worker trips wandb's import hook
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from corrtrack import geometry
from corrtrack.correspondence import image_to_tensor, to_feature_coords
from corrtrack.imageio import read_rgb
from corrtrack.keypoints import NUM_JOINTS
from datamodules.sources import ImageRecord, first_readable, load_records, video_frame_pairs
from datamodules.augment import augment_from_config
from datamodules.sampling import sample_rng, split_key, train_sampler
from datamodules.workers import loader_settings, worker_init

log = logging.getLogger(__name__)

STRIDE = 4


def image_to_feature(xy: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """(..., 2) input pixels -> feature-grid coordinates (``corrtrack.correspondence.to_feature_coords``)."""
    return to_feature_coords(np.asarray(xy, dtype=np.float64), stride)


def feature_cell(xy_feat: np.ndarray) -> np.ndarray:
    """(..., 2) feature coordinates -> (..., 2) int64 (col, row) of the nearest cell; an exact tie (x.5)
    rounds to even, where ``corrtrack.correspondence.nearest_cell`` rounds it up."""
    return np.round(np.asarray(xy_feat, dtype=np.float64)).astype(np.int64)


@dataclass
class AugmentConfig:
    """Random affine ``M2`` and appearance changes of ``I2`` (and the choice of ``I1``).

    max_translate: uniform shift in [-t, t] * input_size per axis; max_rotate: degrees, uniform in [-r, r];
    scale: (lo, hi), log-uniform zoom (> 1 enlarges); flip_prob: horizontal mirror probability;
    crop_prob: probability that I1 is a square crop around a random person (side = person box side *
    U(crop_context)) instead of the whole letterboxed image; crop_scale: (lo, hi) instead fixes the
    crop's image -> input scale, log-uniform in that range (side = input_size / scale): train at the
    scale inference letterboxes frames to (e.g. 0.8 for 640-px frames at ``--input-size 512``);
    photometric: probability of colour jitter on I2 (and on I1 when photometric_both); blur: probability
    of Gaussian or motion blur on I2;
    occlude: probability of pasting 1..3 patches cut from elsewhere in the image over I2 (targets keep the
    occluded points: the correspondence still exists, the net must infer it from context).
    occlude_first: the same for I1, the query image: a joint under a patch is still queried, so its
    descriptor shows the occluder and the net must place it from the context around (as when a joint
    hidden in frame f-1 is propagated to frame f).
    temporal: probability (training only) that a pair is two labeled frames of a PoseTrack-format
    training video instead of one image and its warp: I2 is frame b seen through the same crop as frame
    a (and, with probability ``temporal_warp``, through a random M2 as well), targets are frame b's
    ground truth of the same track ids. This adds what an affine warp cannot show (limbs moving
    against the body, real occlusion, motion blur) and is an extension beyond the paper, which trains
    on single images only (0 = the paper). temporal_gap: frames apart, at most (both time directions).
    """
    max_translate: float = 0.25
    max_rotate: float = 30.0
    scale: tuple[float, float] = (0.75, 1.33)
    flip_prob: float = 0.5
    crop_prob: float = 0.0
    crop_context: tuple[float, float] = (1.5, 3.0)
    crop_scale: tuple[float, float] | None = None
    photometric: float = 0.5
    photometric_both: bool = False
    blur: float = 0.2
    occlude: float = 0.0
    occlude_first: float = 0.0
    temporal: float = 0.0
    temporal_gap: int = 1
    temporal_warp: float = 0.5

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "AugmentConfig":
        return augment_from_config(cls, cfg, tuple_keys=("scale", "crop_context", "crop_scale"))


def _appearance_transform(photometric: bool, blur: bool):

    ts = []
    if photometric:
        ts.append(A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.04, p=1.0))
    if blur:
        ts.append(A.OneOf([A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.5, 2.0), p=1.0),
                           A.MotionBlur(blur_limit=(3, 11), p=1.0)], p=1.0))
    return A.Compose(ts) if ts else None


class AffinePairDataset(Dataset):
    """Affine pairs from a list of ``ImageRecord``s (COCO or PoseTrack layout; 17 joint slots).

    ``__getitem__`` returns a dict for one pair (P = persons kept, <= ``max_persons``): image1, image2
    (3, S, S) float32 tensors normalised by ``corrtrack.correspondence.image_to_tensor``; as numpy:
    kpts1 (P, 17, 2) query positions in feature coords of I1; query_valid (P, 17) bool; target_xy
    (P, 17, 2) warped positions in feature coords of I2 (also for truncated points, which lie outside
    the grid); present (P, 17) bool (query_valid and inside I2);
    target_idx (P, 17) int64 flat cell index row * W_f + col, -1 when not present; affine (2, 3) M2,
    the I1 -> I2 map in input pixels (of a temporal pair: the warp on top of the real motion); index;
    skipped: unreadable image files passed over for this pair (an unreadable image is never trained on).
    ``collate_pairs`` pads persons. With ``video_pairs`` and ``augment.temporal`` > 0, training draws
    that share of its pairs from two frames of a video (:meth:`make_video_pair`).
    """

    def __init__(self, records: Sequence[ImageRecord], input_size: int = 256, max_persons: int = 8,
                 augment: AugmentConfig | None = None, train: bool = True, seed: int = 0,
                 stride: int = STRIDE, min_queries: int = 1,
                 video_pairs: Sequence[tuple[ImageRecord, ImageRecord]] = ()):
        if input_size % stride:
            raise ValueError(f"input_size {input_size} must be a multiple of the stride {stride}")
        if not len(records):
            raise ValueError("AffinePairDataset: no annotated images (check the dataset root and split)")
        self.records = list(records)
        self.input_size = int(input_size)
        self.max_persons = int(max_persons)
        self.aug = augment or AugmentConfig()
        self.train = bool(train)
        self.seed = int(seed)
        self.stride = int(stride)
        self.min_queries = int(min_queries)
        self.video_pairs = list(video_pairs)
        if self.aug.temporal > 0 and self.train and not self.video_pairs:
            raise ValueError("AffinePairDataset: augment.temporal > 0 needs video frame pairs (PoseTrack-format "
                             "training videos with consecutive labeled frames); none were given")
        self._tf: dict[tuple[bool, bool], Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    # -- randomness ---------------------------------------------------------------------------------
    def _rng(self, epoch: int, index: int) -> np.random.Generator:
        if self.train:
            return sample_rng(self.seed, epoch, index, 0xA1F)
        return np.random.default_rng([self.seed, index, 0x5EED])

    def _appearance(self, img: np.ndarray, rng: np.random.Generator, p_photo: float,
                    p_blur: float) -> np.ndarray:
        photo, blur = bool(rng.random() < p_photo), bool(rng.random() < p_blur)
        if not (photo or blur):
            return img
        key = (photo, blur)
        if key not in self._tf:
            self._tf[key] = _appearance_transform(photo, blur)
        tf = self._tf[key]
        tf.set_random_seed(int(rng.integers(0, 2 ** 31 - 1)))
        return tf(image=img)["image"]

    # -- geometry -----------------------------------------------------------------------------------
    def _first_affine(self, img_hw: tuple[int, int], kp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        S = self.input_size
        a = self.aug
        if a.crop_prob > 0 and rng.random() < a.crop_prob:
            annotated = np.where((kp[:, :, 2] > 0).any(axis=1))[0]
            if len(annotated):
                p = int(rng.choice(annotated))
                v = kp[p, kp[p, :, 2] > 0, :2]
                lo, hi = v.min(0), v.max(0)
                if a.crop_scale is not None:
                    side = S / float(np.exp(rng.uniform(np.log(a.crop_scale[0]), np.log(a.crop_scale[1]))))
                else:
                    side = max(float((hi - lo).max()), 8.0) * rng.uniform(*a.crop_context)
                    side = min(side, float(max(img_hw)))
                cx, cy = (lo + hi) / 2 + rng.uniform(-0.15, 0.15, 2) * side
                return geometry.crop_affine(np.array([cx - side / 2, cy - side / 2, side, side]), (S, S),
                                            padding=1.0)
        return geometry.letterbox_affine(img_hw, S)

    def _second_affine(self, rng: np.random.Generator) -> np.ndarray:
        S = self.input_size
        a = self.aug
        c = ((S - 1) / 2.0, (S - 1) / 2.0)
        angle = rng.uniform(-a.max_rotate, a.max_rotate) if a.max_rotate > 0 else 0.0
        lo, hi = a.scale
        scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)
        t = rng.uniform(-a.max_translate, a.max_translate, 2) * S if a.max_translate > 0 else np.zeros(2)
        flip = bool(rng.random() < a.flip_prob)
        return geometry.affine_matrix(c, angle, scale, translate=(float(t[0]), float(t[1])), flip=flip,
                                      flip_width=S)

    def _occlude(self, img2: np.ndarray, source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Paste 1..3 rectangles cut from random places of ``source`` (same size as img2) onto img2."""
        S = self.input_size
        out = img2.copy()
        for _ in range(int(rng.integers(1, 4))):
            h, w = (rng.uniform(0.12, 0.35, 2) * S).astype(int) + 1
            sy, sx = rng.integers(0, S - h + 1), rng.integers(0, S - w + 1)
            dy, dx = rng.integers(0, S - h + 1), rng.integers(0, S - w + 1)
            out[dy:dy + h, dx:dx + w] = source[sy:sy + h, sx:sx + w]
        return out

    def _on_grid(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) image points inside the S x S image whose feature cell is inside the grid."""
        S = self.input_size
        cell = feature_cell(image_to_feature(xy, self.stride))
        return geometry.inside(xy, (S, S)) & ((cell >= 0) & (cell < S // self.stride)).all(-1)

    # -- one pair -----------------------------------------------------------------------------------
    def _load(self, index: int) -> tuple[ImageRecord, np.ndarray, list[str]]:
        """The record and its image, and the unreadable files passed over: an unreadable image is
        skipped for the next readable one (a corrupt file must not kill a long run, and a blank frame
        would not match its targets); ``datamodules.sources.MAX_UNREADABLE_IN_A_ROW`` in a row stop it."""
        i, img, skipped = first_readable(index, len(self.records), lambda j: self.records[j].path)
        return self.records[i], img, skipped

    def make_pair(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.train and self.aug.temporal > 0 and rng.random() < self.aug.temporal:
            return self.make_video_pair(index, rng)
        rec, img, skipped = self._load(index)
        kp = np.asarray(rec.keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
        m1 = self._first_affine(img.shape[:2], kp, rng)
        m2 = self._second_affine(rng)
        return {**self._finish(img, img, kp, kp, m1, m2, index, rng), "skipped": skipped}

    def make_video_pair(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Two labeled frames (a, b) of one training video: I1 from a, I2 = b through the same crop (and
        maybe a random M2); queries are the joints labeled in both frames of the tracks in both."""
        pairs = self.video_pairs

        def both(j: int) -> tuple[np.ndarray, np.ndarray]:
            return read_rgb(pairs[j][0].path), read_rgb(pairs[j][1].path)

        def unreadable(j: int) -> str:   # the frame of the pair that does not read
            for rec in pairs[j]:
                try:
                    read_rgb(rec.path)
                except OSError:
                    return str(rec.path)
            return str(pairs[j][0].path)

        start = int(rng.integers(len(pairs)))
        j, (img_a, img_b), skipped = first_readable(start, len(pairs), unreadable, both)
        rec_a, rec_b = pairs[j]
        common, ia, ib = np.intersect1d(rec_a.track_ids, rec_b.track_ids, return_indices=True)
        kp_a = np.asarray(rec_a.keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)[ia]
        kp_b = np.asarray(rec_b.keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)[ib]
        m1 = self._first_affine(img_a.shape[:2], kp_a, rng)
        m2 = self._second_affine(rng) if rng.random() < self.aug.temporal_warp else np.eye(3)[:2]
        return {**self._finish(img_a, img_b, kp_a, kp_b, m1, m2, index, rng), "skipped": skipped}

    def _finish(self, img_a: np.ndarray, img_b: np.ndarray, kp_a: np.ndarray, kp_b: np.ndarray,
                m1: np.ndarray, m2: np.ndarray, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Render I1 = img_a through M1 and I2 = img_b through M2 @ M1 and build the targets. kp_a / kp_b:
        (P, 17, 3) the same persons in image pixels of img_a / img_b (one array twice for an affine
        pair). A joint is queried when labeled in both and inside I1; present when also inside I2."""
        S, s = self.input_size, self.stride
        m12 = geometry.compose(m2, m1)
        img1 = geometry.warp_image(img_a, m1, (S, S))
        img2 = geometry.warp_image(img_b, m12, (S, S))

        k1 = geometry.warp_points(kp_a[:, :, :2], m1)
        k2 = geometry.warp_points(kp_b[:, :, :2], m12)
        query = (kp_a[:, :, 2] > 0) & (kp_b[:, :, 2] > 0) & self._on_grid(k1)
        present = query & self._on_grid(k2)

        # persons with >= min_queries queries; a random subset (train) or the first ones (val) when capped
        keep = np.where(query.sum(1) >= self.min_queries)[0]
        if len(keep) > self.max_persons:
            keep = np.sort(rng.choice(keep, self.max_persons, replace=False)) if self.train \
                else keep[:self.max_persons]
        k1, k2, query, present = k1[keep], k2[keep], query[keep], present[keep]

        a = self.aug
        if a.occlude > 0 and rng.random() < a.occlude:
            img2 = self._occlude(img2, img1 if rng.random() < 0.5 else img2, rng)
        if a.occlude_first > 0 and rng.random() < a.occlude_first:
            img1 = self._occlude(img1, img1, rng)
        img2 = self._appearance(img2, rng, a.photometric, a.blur)
        if a.photometric_both:
            img1 = self._appearance(img1, rng, a.photometric, 0.0)

        f1, f2 = image_to_feature(k1, s), image_to_feature(k2, s)
        cell = feature_cell(f2)
        idx = np.where(present, cell[..., 1] * (S // s) + cell[..., 0], -1)
        return {
            "image1": image_to_tensor(img1), "image2": image_to_tensor(img2),
            "kpts1": np.where(query[..., None], f1, 0.0).astype(np.float32),
            "query_valid": query,
            "target_xy": f2.astype(np.float32),
            "present": present,
            "target_idx": idx.astype(np.int64),
            "affine": m2.astype(np.float32),
            "index": np.int64(index),
        }

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, np.ndarray]:
        """Pair ``index`` (a plain index, or the ``(epoch, index)`` the training sampler yields)."""
        epoch, index = split_key(key)
        return self.make_pair(index, self._rng(epoch, index))


def collate_pairs(samples: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack pairs, padding the person axis to the batch's largest count (at least 1).

    Returns image1, image2 (B, 3, S, S); kpts1, target_xy (B, P, 17, 2) float; query_valid, present
    (B, P, 17) bool; target_idx (B, P, 17) int64 (-1 absent or padding); person_valid (B, P) bool;
    affine (B, 2, 3); index (B,); skipped: the unreadable image files passed over (list of str).
    """
    B = len(samples)
    P = max(1, max(s["query_valid"].shape[0] for s in samples))
    J = NUM_JOINTS
    out = {
        "image1": torch.stack([torch.as_tensor(s["image1"]) for s in samples]),
        "image2": torch.stack([torch.as_tensor(s["image2"]) for s in samples]),
        "kpts1": torch.zeros(B, P, J, 2),
        "target_xy": torch.zeros(B, P, J, 2),
        "query_valid": torch.zeros(B, P, J, dtype=torch.bool),
        "present": torch.zeros(B, P, J, dtype=torch.bool),
        "target_idx": torch.full((B, P, J), -1, dtype=torch.int64),
        "person_valid": torch.zeros(B, P, dtype=torch.bool),
        "affine": torch.from_numpy(np.stack([s["affine"] for s in samples])),
        "index": torch.as_tensor([int(s["index"]) for s in samples]),
        "skipped": [p for s in samples for p in s.get("skipped", ())],
    }
    for b, s in enumerate(samples):
        n = s["query_valid"].shape[0]
        if n == 0:
            continue
        for k in ("kpts1", "target_xy", "query_valid", "present", "target_idx"):
            out[k][b, :n] = torch.from_numpy(np.asarray(s[k]))
        out["person_valid"][b, :n] = True
    return out


class PairDataModule(pl.LightningDataModule):
    """Affine-pair DataModule from the ``data`` section of a stage config.

    Reads ``data.train_format`` records (COCO via pycocotools, or PoseTrack labeled frames) from the
    configured roots (``synth`` = the synthetic world, generated on first use), splits ``train_split``
    / ``val_split``. Validation uses at most ``val_max_images`` images (evenly spaced) and fixed
    per-index randomness.
    """

    def __init__(self, data_cfg, seed: int = 0):
        super().__init__()
        self.cfg = data_cfg
        self.seed = int(seed)
        self.resume_position: tuple[int, int] | None = None   # (epoch, batches done): set on resume
        self.train_set: AffinePairDataset | None = None
        self.val_set: AffinePairDataset | None = None

    def augment(self) -> AugmentConfig:
        """``data.augment``; temporal pairs are switched off (with a warning) for real COCO without a
        PoseTrack root: synthetic videos are never mixed into real data."""
        c = self.cfg
        aug = AugmentConfig.from_config(c.get("augment"))
        if aug.temporal > 0 and str(c.posetrack_root) == "synth" and str(c.coco_root) != "synth" \
                and c.train_format == "coco":
            log.warning("data.augment.temporal = %s ignored: training on real COCO without data.posetrack_root "
                        "(set POSETRACK_ROOT for temporal pairs from PoseTrack training videos)", aug.temporal)
            aug.temporal = 0.0
        return aug

    def _dataset(self, split: str, train: bool) -> AffinePairDataset:
        c = self.cfg
        records = load_records(c, split)
        cap = c.get("val_max_images") if not train else c.get("train_max_images")
        if cap and len(records) > int(cap):
            pick = np.linspace(0, len(records) - 1, int(cap)).round().astype(int)
            records = [records[i] for i in pick]
        aug = self.augment()
        video_pairs = []
        if train and aug.temporal > 0:
            video_pairs = video_frame_pairs(load_records(c, split, layout="posetrack"), int(aug.temporal_gap))
            if not video_pairs:
                raise ValueError(f"data.augment.temporal = {aug.temporal} but the PoseTrack {split!r} videos have no "
                                 f"labeled frames <= {aug.temporal_gap} apart sharing a track id")
        return AffinePairDataset(records, input_size=int(c.input_size), max_persons=int(c.max_persons),
                                 augment=aug, train=train, seed=self.seed, stride=int(c.get("stride", STRIDE)),
                                 video_pairs=video_pairs)

    def prepare_data(self) -> None:
        from datamodules.sources import dataset_root
        # generates the synthetic world once, before DDP workers read it
        dataset_root(self.cfg, self.cfg.train_format)
        if self.augment().temporal > 0:
            dataset_root(self.cfg, "posetrack")

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self._dataset(self.cfg.get("train_split", "train"), train=True)
        if self.val_set is None and stage in (None, "fit", "validate"):
            self.val_set = self._dataset(self.cfg.get("val_split", "val"), train=False)

    def _loader(self, ds: AffinePairDataset, shuffle: bool) -> DataLoader:
        nw, pin = loader_settings(self.cfg)
        sampler = train_sampler(self, ds, self.seed) if shuffle else None
        return DataLoader(ds, batch_size=int(self.cfg.batch_size), sampler=sampler, num_workers=nw,
                          collate_fn=collate_pairs, pin_memory=pin,
                          drop_last=shuffle and len(ds) >= int(self.cfg.batch_size),
                          persistent_workers=nw > 0, worker_init_fn=worker_init if nw > 0 else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)


def benchmark_pipeline(cfg, *, num_workers: int | None = None, batches: int = 20,
                       warmup: int = 2, **data_overrides) -> float:
    """Training pairs per second of the data pipeline (read, warp, augment, collate) as the DataLoader
    delivers them. ``cfg``: a stage config (its ``data`` section is used) or a ``data`` section;
    ``data_overrides`` replace ``data`` keys (e.g. ``input_size=256``). From the command line:
    ``python -m experiments.stages.correspondence bench-data``."""
    from omegaconf import OmegaConf

    data_cfg = cfg.data if "data" in cfg else cfg
    data_cfg = OmegaConf.merge(data_cfg, {k: v for k, v in data_overrides.items()})
    if num_workers is not None:
        data_cfg.num_workers = int(num_workers)
    dm = PairDataModule(data_cfg)
    dm.setup("fit")
    loader = dm.train_dataloader()

    def batches_forever():
        while True:
            yield from loader

    it = batches_forever()
    for _ in range(warmup):  # worker start-up and the first file reads are not throughput
        next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        n += next(it)["image1"].shape[0]
    return n / (time.perf_counter() - t0)
