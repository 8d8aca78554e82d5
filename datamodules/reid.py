"""Person crops with identities for re-ID training, from PoseTrack-format videos.

An identity is one person track of one video: ``(video, track_id)`` of the PoseTrack 2018 files, so the
training data are the training videos' labeled frames (the synthetic world by default, real PoseTrack
with ``data.posetrack_root``). Each annotated person with a track id and a box at least
``min_box_height`` pixels tall is one crop: its box enlarged by ``padding`` at the crop's aspect ratio
(``corrtrack.reid.crop_persons``, the rule inference uses).

Validation is on identities never trained on: by default a fixed share ``holdout`` of the training
videos (evenly spaced in name order, independent of the seed) is held out, or with ``val_split`` set
(e.g. ``val``) the videos of that split. Every crop of every ``val_frame_step``-th labeled frame of those
videos is a query, and all of them form the gallery; the query's own frame is excluded from its
gallery (``lightning_modules.reid`` scores rank-1 and mAP).

Training batches are P identities x K instances (:class:`PKSampler`: ``batch_size`` = P, ``instances`` =
K): the batch-hard triplet loss needs positives and negatives in every batch. One epoch visits every
training identity once (P at a time) with K of its crops drawn at random (without replacement when it
has K or more), deterministically per ``seed`` and epoch. Under DDP each rank takes every
``world_size``-th batch (the stage sets ``trainer.use_distributed_sampler: false``). The sampler yields
``(epoch, index)`` and each crop's augmentation draws from ``(seed, epoch, index)``
(``datamodules.sampling``), so a resumed run continues with exactly the batches it would have seen; an
unreadable training image is skipped for another crop of the same identity (and counted by the run).

Training augmentation (the re-ID strong baseline's, in our geometry): horizontal flip, box jitter
(zoom ``scale``, centre ``shift``) and random erasing of a rectangle (filled with the mean colour).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from corrtrack import geometry
from corrtrack.imageio import read_rgb
from corrtrack.nets.utils import IMAGE_MEAN, normalize_images
from corrtrack.reid import crop_persons
from datamodules.augment import augment_from_config
from datamodules.sampling import sample_rng, split_key
from datamodules.sources import (ImageRecord, dataset_root, first_readable, frame_number,
                                 load_posetrack_records)
from datamodules.workers import loader_settings, worker_init

log = logging.getLogger(__name__)


@dataclass
class ReIDAugment:
    """Training augmentation of re-ID crops.

    flip_prob: horizontal flip probability; scale: (lo, hi) zoom-out of the box (> 1 = more context),
    log-uniform; shift: box-centre jitter, uniform in [-t, t] x box size per axis; erase_prob: probability
    of random erasing; erase_area: (lo, hi) share of the crop erased; erase_aspect: (lo, hi) aspect ratio
    of the erased rectangle, log-uniform.
    """
    flip_prob: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.05
    erase_prob: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.4)
    erase_aspect: tuple[float, float] = (0.3, 3.3)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "ReIDAugment":
        return augment_from_config(cls, cfg, tuple_keys=("scale", "erase_area", "erase_aspect"))


@dataclass
class PersonCrop:
    """One person crop: record index, person index in the record, box [x, y, w, h] in image pixels,
    identity index (into ``ReIDDataset.identities``), video name and frame number."""
    record: int
    person: int
    box: np.ndarray
    identity: int
    video: str
    frame: int


def collect_crops(records: Sequence[ImageRecord], min_box_height: float = 16.0
                  ) -> tuple[list[PersonCrop], list[tuple[str, int]]]:
    """The crops of PoseTrack records and their identities.

    Persons without a track id (< 0) or with a box lower than ``min_box_height`` px or narrower than 2 px
    are left out. Returns (crops, identities) where identities[i] = (video, track_id) of identity i, in
    sorted order."""
    keys: dict[tuple[str, int], int] = {}
    raw = []
    for r, rec in enumerate(records):
        if rec.track_ids is None:
            raise ValueError(f"{rec.path}: re-ID crops need PoseTrack records with track ids")
        video = str(rec.extra.get("sequence"))
        frame = frame_number(rec)
        for p, (box, tid) in enumerate(zip(rec.boxes, rec.track_ids)):
            box = np.asarray(box, np.float64)
            if int(tid) < 0 or box[3] < min_box_height or box[2] < 2:
                continue
            keys.setdefault((video, int(tid)), 0)
            raw.append((r, p, box, (video, int(tid)), frame))
    identities = sorted(keys)
    index = {k: i for i, k in enumerate(identities)}
    crops = [PersonCrop(r, p, box, index[key], key[0], frame) for r, p, box, key, frame in raw]
    return crops, identities


def holdout_videos(videos: Sequence[str], share: float) -> list[str]:
    """A fixed share of ``videos`` held out for validation: round(share x n) of them (at least 1 and at
    most n - 1 when share > 0), evenly spaced in sorted name order (no randomness)."""
    names = sorted(set(videos))
    if share <= 0:
        return []
    if len(names) < 2:
        raise ValueError(f"data.holdout: need at least 2 training videos to hold some out, found {len(names)}")
    n = int(min(max(round(share * len(names)), 1), len(names) - 1))
    pick = np.unique(np.round(np.linspace(0, len(names) - 1, n)).astype(int))
    return [names[i] for i in pick]


class ReIDDataset(Dataset):
    """Person crops with identity labels.

    ``__getitem__`` returns numpy arrays: image (3, H, W) float32 normalised RGB; label int64 (the
    identity index: the classifier's class for training); frame int64 (frame number); video int64
    (index into ``videos``); index int64.

    Args:
        records: PoseTrack-layout records (with track ids and ``extra["sequence"]``).
        input_size: (H, W) crop size; padding: box enlargement.
        train: augment with fresh randomness per sample; otherwise the plain deterministic crop.
        min_box_height: smaller persons are left out.
        min_instances: identities with fewer crops are left out (training needs positive pairs).
    """

    def __init__(self, records: Sequence[ImageRecord], input_size: tuple[int, int] = (256, 128),
                 padding: float = 1.1, train: bool = True, augment: ReIDAugment | None = None,
                 min_box_height: float = 16.0, min_instances: int = 1, seed: int = 0):
        self.records = list(records)
        self.seed = int(seed)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.padding = float(padding)
        self.train = bool(train)
        self.aug = augment or ReIDAugment()
        crops, identities = collect_crops(self.records, min_box_height)
        counts = np.bincount([c.identity for c in crops], minlength=len(identities))
        keep = [i for i in range(len(identities)) if counts[i] >= min_instances]
        remap = {old: new for new, old in enumerate(keep)}
        self.identities: list[tuple[str, int]] = [identities[i] for i in keep]
        self.crops = [PersonCrop(c.record, c.person, c.box, remap[c.identity], c.video, c.frame)
                      for c in crops if c.identity in remap]
        if not self.crops:
            raise ValueError(f"ReIDDataset: no person crops with track ids in {len(self.records)} frames "
                             f"(check the dataset root and split, data.min_box_height, data.min_instances)")
        self.videos = sorted({c.video for c in self.crops})
        vindex = {v: i for i, v in enumerate(self.videos)}
        self.labels = np.array([c.identity for c in self.crops], np.int64)
        self.frames = np.array([c.frame for c in self.crops], np.int64)
        self.video_ids = np.array([vindex[c.video] for c in self.crops], np.int64)
        self._last: tuple[int, np.ndarray] | None = None   # validation reads a frame's crops in a row

    @property
    def num_identities(self) -> int:
        return len(self.identities)

    def __len__(self) -> int:
        return len(self.crops)

    def _rng(self, epoch: int, index: int) -> np.random.Generator:
        return sample_rng(self.seed, epoch, index, 0x9E1D)

    def augment_crop(self, image: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A training crop of ``box``: box jitter, flip and random erasing. Returns (H, W, 3) uint8."""
        a = self.aug
        lo, hi = a.scale
        scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)
        shift = rng.uniform(-a.shift, a.shift, 2) if a.shift > 0 else np.zeros(2)
        flip = bool(rng.random() < a.flip_prob)
        m = geometry.crop_affine(box, self.input_size, self.padding, scale=scale, flip=flip,
                                 shift=(float(shift[0]), float(shift[1])))
        crop = geometry.warp_image(image, m, self.input_size)
        if rng.random() < a.erase_prob:
            random_erase(crop, rng, a.erase_area, a.erase_aspect)
        return crop

    def _image(self, record: int) -> np.ndarray:
        """Validation: the frame (a blank one, with a warning, when unreadable: every query is scored)."""
        if self._last is not None and self._last[0] == record:
            return self._last[1]
        rec = self.records[record]
        try:
            image = read_rgb(rec.path)
        except OSError as e:
            log.warning("validation: a blank frame for an unreadable image: %s", e)
            image = np.zeros((rec.height, rec.width, 3), np.uint8)
        self._last = (record, image)
        return image

    def _train_image(self, index: int) -> tuple[int, np.ndarray, list[str]]:
        """(crop index, its frame, unreadable files passed over): an unreadable frame is skipped for the
        next readable crop of the same identity (a blank crop would train its label on no person)."""
        members = np.flatnonzero(self.labels == self.labels[index])
        start = int(np.searchsorted(members, index))
        path_of = lambda j: self.records[self.crops[int(members[j])].record].path  # noqa: E731
        j, image, skipped = first_readable(start, len(members), path_of)
        return int(members[j]), image, skipped

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Crop ``index`` (a plain index, or the ``(epoch, index)`` the training sampler yields)."""
        epoch, index = split_key(key)
        skipped: list[str] = []
        if self.train:
            index, image, skipped = self._train_image(index)
            c = self.crops[index]
            crop = self.augment_crop(image, c.box, self._rng(epoch, index))
        else:
            c = self.crops[index]
            crop = crop_persons(self._image(c.record), c.box[None], self.input_size, self.padding)[0]
        return {"image": normalize_images(crop).numpy(), "label": np.int64(c.identity),
                "frame": np.int64(c.frame), "video": self.video_ids[index], "index": np.int64(index),
                "skipped": skipped}


def random_erase(crop: np.ndarray, rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.4),
                 aspect: tuple[float, float] = (0.3, 3.3), attempts: int = 10) -> bool:
    """Random erasing (Zhong et al. 2020) in place on an (H, W, 3) uint8 crop: a rectangle of ``area`` x
    the crop's area and log-uniform ``aspect`` (h / w) filled with the mean colour (0 after input
    normalisation). Returns whether a rectangle fitted within ``attempts`` draws."""
    h, w = crop.shape[:2]
    fill = np.round(np.asarray(IMAGE_MEAN) * 255).astype(np.uint8)
    for _ in range(attempts):
        target = rng.uniform(*area) * h * w
        ar = float(np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1]))))
        eh, ew = int(round(np.sqrt(target * ar))), int(round(np.sqrt(target / ar)))
        if 0 < eh < h and 0 < ew < w:
            y, x = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            crop[y:y + eh, x:x + ew] = fill
            return True
    return False


class PKSampler(Sampler[int]):
    """P identities x K instances per batch, as one flat index stream: every consecutive block of P x K
    indices is one batch (use with ``DataLoader(batch_size=P * K, drop_last=True)``).

    Per epoch (``set_epoch``, called by Lightning) the identities are shuffled and taken P at a time
    (a last group of fewer than P is dropped); each contributes K of its crops, drawn without
    replacement when it has at least K, else with. Deterministic given ``seed`` and the epoch. Under DDP
    rank r of ``world_size`` takes batches r, r + world_size, ... (equal counts on every rank).

    Args:
        labels: (N,) identity of every crop. identities: P (capped at the number of identities).
        instances: K. seed: base seed. rank, world_size: the process's share.
    """

    def __init__(self, labels: np.ndarray, identities: int, instances: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        labels = np.asarray(labels, np.int64)
        ids = np.unique(labels)
        if len(ids) < 2:
            raise ValueError(f"PKSampler: need at least 2 identities for triplets, found {len(ids)}")
        if instances < 1 or identities < 2:
            raise ValueError(f"PKSampler: need identities >= 2 and instances >= 1 per batch "
                             f"(got {identities} x {instances})")
        self.ids = ids
        self.members = {int(i): np.flatnonzero(labels == i) for i in ids}
        self.p = int(min(identities, len(ids)))
        self.k = int(instances)
        self.seed, self.rank, self.world_size = int(seed), int(rank), max(1, int(world_size))
        self.epoch = 0
        self._start: tuple[int, int] | None = None

    @property
    def batch_size(self) -> int:
        """P x K crops per batch."""
        return self.p * self.k

    @property
    def num_batches(self) -> int:
        """Batches per epoch of this rank."""
        return (len(self.ids) // self.p) // self.world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` (default: the current one), each (P x K,) crop indices."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch), 0x9E1D])
        order = rng.permutation(self.ids)
        out = []
        for b in range(len(order) // self.p):
            group = order[b * self.p:(b + 1) * self.p]
            idx = [rng.choice(self.members[int(i)], self.k, replace=len(self.members[int(i)]) < self.k)
                   for i in group]
            out.append(np.concatenate(idx))
        return out[self.rank::self.world_size][:self.num_batches]

    def start_at(self, epoch: int, batches_done: int) -> None:
        """Resume: the next pass over ``epoch`` skips its first ``batches_done`` batches of this rank."""
        self.set_epoch(epoch)
        self._start = (int(epoch), int(batches_done))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """``(epoch, crop index)`` pairs, P x K per batch."""
        epoch, start = self.epoch, self._start
        self._start = None
        skip = start[1] if start is not None and start[0] == epoch else 0
        return iter([(epoch, int(i)) for b in self.batches()[skip:] for i in b])

    def __len__(self) -> int:
        return self.num_batches * self.batch_size


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stacked tensors; ``skipped``: the unreadable image files passed over (list of str)."""
    out: dict[str, Any] = {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]
                           if k != "skipped"}
    out["skipped"] = [p for s in samples for p in s.get("skipped", ())]
    return out


class ReIDDataModule(pl.LightningDataModule):
    """Re-ID crops from the ``data`` section of a ``reid`` config (keys in ``experiments/configs/reid.yaml``).

    ``setup`` reads the PoseTrack records of ``train_split`` from ``posetrack_root`` (``synth`` = the
    synthetic world, generated on first use), splits off the validation videos (``holdout`` share, or
    the ``val_split`` videos) and builds ``train_set`` / ``val_set``. ``num_classes`` = training
    identities (the classifier's size; known after ``setup``).
    """

    def __init__(self, data_cfg, seed: int = 0):
        super().__init__()
        self.cfg = data_cfg
        self.seed = int(seed)
        self.resume_position: tuple[int, int] | None = None   # (epoch, batches done): set on resume
        self.train_set: ReIDDataset | None = None
        self.val_set: ReIDDataset | None = None
        self.val_videos: list[str] = []

    @property
    def input_size(self) -> tuple[int, int]:
        s = self.cfg.input_size
        return (int(s[0]), int(s[1]))

    def prepare_data(self) -> None:
        dataset_root(self.cfg, "posetrack")  # generates the synthetic world once, before DDP workers read it

    def _records(self, split: str) -> list[ImageRecord]:
        return load_posetrack_records(dataset_root(self.cfg, "posetrack"), split)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        c = self.cfg
        train = self._records(str(c.train_split))
        if c.get("val_split"):
            val = self._records(str(c.val_split))
            self.val_videos = sorted({str(r.extra.get("sequence")) for r in val})
        else:
            self.val_videos = holdout_videos([str(r.extra.get("sequence")) for r in train], float(c.holdout))
            held = set(self.val_videos)
            val = [r for r in train if str(r.extra.get("sequence")) in held]
            train = [r for r in train if str(r.extra.get("sequence")) not in held]
        step = int(c.get("val_frame_step") or 1)
        if step > 1:
            val = _every_nth_frame(val, step)
        common = dict(input_size=self.input_size, padding=float(c.padding),
                      min_box_height=float(c.min_box_height))
        self.train_set = ReIDDataset(train, train=True, augment=ReIDAugment.from_config(c.get("augment")),
                                     min_instances=int(c.min_instances), seed=self.seed, **common)
        self.val_set = ReIDDataset(val, train=False, **common) if val else None
        log.info("re-ID data: %d training identities (%d crops), %d validation identities (%d crops, "
                 "videos %s)", self.train_set.num_identities, len(self.train_set),
                 self.val_set.num_identities if self.val_set else 0, len(self.val_set or []), self.val_videos)

    @property
    def num_classes(self) -> int:
        if self.train_set is None:
            self.setup("fit")
        return self.train_set.num_identities

    def _rank(self) -> tuple[int, int]:
        t = getattr(self, "trainer", None)
        return (int(t.global_rank), int(t.world_size)) if t is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        sampler = PKSampler(self.train_set.labels, int(self.cfg.batch_size), int(self.cfg.instances),
                            seed=self.seed, rank=rank, world_size=world)
        if self.resume_position is not None:   # once: a reloaded loader starts its epoch from the beginning
            sampler.start_at(*self.resume_position)
            self.resume_position = None
        nw, pin = loader_settings(self.cfg)
        return DataLoader(self.train_set, batch_size=sampler.batch_size, sampler=sampler, drop_last=True,
                          num_workers=nw, collate_fn=collate, pin_memory=pin,
                          persistent_workers=nw > 0, worker_init_fn=worker_init if nw > 0 else None)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            raise ValueError("re-ID validation: no held-out videos (set data.holdout > 0 or data.val_split)")
        nw, pin = loader_settings(self.cfg)
        # every rank embeds every crop: the ranking needs all of them, and the metrics come out equal
        return DataLoader(self.val_set, batch_size=int(self.cfg.val_batch_size), shuffle=False,
                          num_workers=nw, collate_fn=collate, pin_memory=pin,
                          persistent_workers=nw > 0, worker_init_fn=worker_init if nw > 0 else None)


def _every_nth_frame(records: list[ImageRecord], step: int) -> list[ImageRecord]:
    """Every ``step``-th labeled frame of each video (the first one included)."""
    by_video: dict[str, list[ImageRecord]] = {}
    for r in records:
        by_video.setdefault(str(r.extra.get("sequence")), []).append(r)
    out = []
    for recs in by_video.values():
        out += sorted(recs, key=frame_number)[::step]
    return out
