"""Where the images come from: dataset roots (real or synthetic) and uniform per-image records.

Both training families read the same ``ImageRecord`` list, whatever the file layout:
- COCO keypoints (``person_keypoints_{split}2017.json``, read through pycocotools), COCO-17 joints;
- PoseTrack (one JSON per video, read through ``corrtrack.posetrack``), the labeled frames, PoseTrack-17
  slots.

A root given as ``synth`` is the built-in synthetic world, generated on first use into
``data.synth.root/<preset>-seed<seed>`` (atomic; a half-written world is regenerated).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from corrtrack.imageio import image_size, read_rgb
from corrtrack.keypoints import NUM_JOINTS
from corrtrack.posetrack import frame_number as posetrack_frame_number, load_sequence


@dataclass
class ImageRecord:
    """One annotated image. keypoints: (N, 17, 3) x, y, v in image pixels (v: 0 absent, 1 occluded /
    labeled, 2 visible); boxes: (N, 4) [x, y, w, h]; areas: (N,) object areas (for OKS)."""
    path: Path
    width: int
    height: int
    image_id: int
    keypoints: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    layout: str                                   # "coco" | "posetrack"
    track_ids: np.ndarray | None = None            # (N,) PoseTrack track ids
    extra: dict = field(default_factory=dict)


def synth_world_dir(data_cfg: DictConfig) -> Path:
    s = data_cfg.synth
    return Path(s.root) / f"{s.preset}-seed{int(s.seed)}"


def ensure_synth(data_cfg: DictConfig) -> Path:
    """The synthetic world of ``data_cfg.synth``, generated if missing."""
    from corrtrack.synth import ensure_world

    s = data_cfg.synth
    return Path(ensure_world(synth_world_dir(data_cfg), preset=s.preset, seed=int(s.seed)))


def dataset_root(data_cfg: DictConfig, layout: str) -> Path:
    """The root of ``layout`` ("coco" | "posetrack"): the configured path, or the synthetic world's folder
    (generated on first use) when the key is ``synth``. Only the asked-for root is resolved, so real
    COCO with an unset PoseTrack root never generates a world."""
    keys = {"coco": "coco_root", "posetrack": "posetrack_root"}
    if layout not in keys:
        raise ValueError(f"data layout must be 'coco' or 'posetrack', got {layout!r}")
    value = str(data_cfg[keys[layout]])
    return ensure_synth(data_cfg) / layout if value == "synth" else Path(value).expanduser()


def _coco_split_paths(root: Path, split: str) -> tuple[Path, Path]:
    """Annotation file and image folder of a COCO split ("train" | "val"); accepts both the official
    layout (root/train2017, root/annotations) and root/images/train2017."""
    ann = root / "annotations" / f"person_keypoints_{split}2017.json"
    if not ann.is_file():
        raise FileNotFoundError(f"COCO annotations not found: {ann} (set data.coco_root / COCO_ROOT to the "
                                f"folder holding annotations/ and {split}2017/)")
    for img_dir in (root / "images" / f"{split}2017", root / f"{split}2017"):
        if img_dir.is_dir():
            return ann, img_dir
    raise FileNotFoundError(f"COCO images not found: neither {root / 'images' / f'{split}2017'} nor "
                            f"{root / f'{split}2017'} exists")


def load_coco_records(root: str | Path, split: str, min_keypoints: int = 1) -> list[ImageRecord]:
    """Images of a COCO split with at least one non-crowd person having >= ``min_keypoints`` keypoints.
    Crowd annotations and persons with fewer keypoints are left out of the targets."""
    from pycocotools.coco import COCO
    import contextlib
    import io

    ann_file, img_dir = _coco_split_paths(Path(root), split)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann_file))
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as e:
        # truncated JSON, missing sections; pycocotools asserts that the file holds a JSON object
        raise ValueError(f"{ann_file}: not a readable COCO keypoint annotation file "
                         f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    records = []
    for img_id in sorted(coco.getImgIds()):
        try:
            info = coco.loadImgs(img_id)[0]
            anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=False))
                    if a.get("num_keypoints", 0) >= min_keypoints]
            if not anns:
                continue
            kp = np.array([a["keypoints"] for a in anns], dtype=np.float32).reshape(-1, NUM_JOINTS, 3)
            records.append(ImageRecord(
                path=img_dir / info["file_name"], width=int(info["width"]), height=int(info["height"]),
                image_id=int(img_id), keypoints=kp,
                boxes=np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4),
                areas=np.array([a.get("area", a["bbox"][2] * a["bbox"][3]) for a in anns], dtype=np.float32),
                layout="coco"))
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # a field missing or not numbers
            raise ValueError(f"{ann_file}: image id {img_id}: bad field in its image or person annotations "
                             f"(keypoints: 51 numbers, bbox: 4, width/height/file_name) "
                             f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    return records


def posetrack_annotation_files(root: str | Path, split: str) -> list[Path]:
    folder = Path(root) / "annotations" / split
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no PoseTrack annotation files in {folder} (set data.posetrack_root / "
                                f"POSETRACK_ROOT to the folder holding annotations/ and images/)")
    return files


def load_posetrack_records(root: str | Path, split: str, min_keypoints: int = 1) -> list[ImageRecord]:
    """Frames of every PoseTrack video of ``split`` (2018 or 2017 files, read by ``corrtrack.posetrack``)
    that have >= 1 person with >= ``min_keypoints`` labeled joints (v > 0). PoseTrack marks joints only as
    labeled (v=1). A person without a box gets the box of its labeled joints; a frame without its size in
    the file is measured from the image header."""
    root = Path(root)
    records = []
    for f in posetrack_annotation_files(root, split):
        seq = load_sequence(str(f))
        for frame in seq.frames:
            persons = [p for p in frame.persons if int((p.keypoints[:, 2] > 0).sum()) >= min_keypoints]
            if not persons:
                continue
            kp = np.stack([p.keypoints for p in persons]).astype(np.float32)
            boxes = np.array([p.bbox if p.bbox is not None else _box_of(k) for p, k in zip(persons, kp)],
                             dtype=np.float32).reshape(-1, 4)
            path = root / frame.file_name
            w, h = frame.width, frame.height
            if w is None or h is None:
                w, h = _image_size(path)
            records.append(ImageRecord(
                path=path, width=int(w), height=int(h), image_id=int(frame.image_id), keypoints=kp,
                boxes=boxes, areas=boxes[:, 2] * boxes[:, 3], layout="posetrack",
                track_ids=np.array([-1 if p.track_id is None else p.track_id for p in persons], dtype=np.int64),
                extra={"sequence": seq.name, "annotation_ids": [p.ann_id for p in persons]}))
    return records


def frame_number(rec: ImageRecord) -> int:
    """The frame number of a PoseTrack record: the integer stem of its file name (poseval's rule)."""
    return posetrack_frame_number(rec.path)


def video_frame_pairs(records: list[ImageRecord], max_gap: int = 1) -> list[tuple[ImageRecord, ImageRecord]]:
    """Ordered pairs (a, b) of labeled frames of one video at most ``max_gap`` frames apart, in both time
    directions, that share at least one track id: the temporal training pairs (real articulation,
    occlusion and motion blur between the frames). ``records``: PoseTrack-layout records with
    ``track_ids`` and ``extra["sequence"]``."""
    if max_gap < 1:
        raise ValueError(f"data.augment.temporal_gap must be >= 1 (got {max_gap})")
    by_video: dict[str, dict[int, ImageRecord]] = {}
    for r in records:
        if r.layout != "posetrack" or r.track_ids is None:
            raise ValueError(f"{r.path}: temporal pairs need PoseTrack records with track ids")
        by_video.setdefault(str(r.extra.get("sequence")), {})[frame_number(r)] = r
    pairs = []
    for frames in by_video.values():
        for n, a in sorted(frames.items()):
            for g in range(1, max_gap + 1):
                b = frames.get(n + g)
                if b is not None and set(a.track_ids.tolist()) & set(b.track_ids.tolist()):
                    pairs += [(a, b), (b, a)]
    return pairs


def _box_of(kp: np.ndarray) -> list[float]:
    v = kp[kp[:, 2] > 0, :2]
    lo, hi = v.min(0), v.max(0)
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]


_SIZE_CACHE: dict[Path, tuple[int, int]] = {}


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header (cached)."""
    if path not in _SIZE_CACHE:
        _SIZE_CACHE[path] = image_size(path)
    return _SIZE_CACHE[path]


def load_records(data_cfg: DictConfig, split: str, layout: str | None = None) -> list[ImageRecord]:
    """Records of ``split`` in ``layout`` (default ``data_cfg.train_format``) from the configured roots."""
    layout = layout or data_cfg.train_format
    if layout == "coco":
        return load_coco_records(dataset_root(data_cfg, "coco"), split)
    if layout == "posetrack":
        return load_posetrack_records(dataset_root(data_cfg, "posetrack"), split)
    raise ValueError(f"data.train_format must be 'coco' or 'posetrack', got {layout!r}")


#: unreadable training images in a row (while looking for a readable one) that stop the run
MAX_UNREADABLE_IN_A_ROW = 20


class UnreadableDataError(OSError):
    """Too many unreadable training images in a row; the message names them."""


def first_readable(start: int, count: int, path_of, load=None):
    """The first readable item at or after ``start`` (cyclically over ``count`` items): returns
    ``(index, image, skipped)``, ``skipped`` = the paths of the unreadable ones passed over. ``path_of(i)``
    is item i's image path, ``load(i)`` reads it (default: ``corrtrack.imageio.read_rgb`` of it). Raises
    UnreadableDataError naming the files after ``MAX_UNREADABLE_IN_A_ROW`` unreadable items in a row."""
    skipped: list[str] = []
    for k in range(min(MAX_UNREADABLE_IN_A_ROW, max(count, 1))):
        i = (start + k) % count
        try:
            return i, (load(i) if load is not None else read_rgb(path_of(i))), skipped
        except OSError:
            skipped.append(str(path_of(i)))
    shown = ", ".join(skipped[:3]) + (f", ... {skipped[-1]}" if len(skipped) > 3 else "")
    raise UnreadableDataError(f"{len(skipped)} unreadable training images in a row (missing or corrupt): "
                              f"{shown}; check the dataset files")
