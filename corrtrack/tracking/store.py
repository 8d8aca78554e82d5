"""Precomputations on disk (``python -m corrtrack.track --cache-dir DIR``, the tracking sweeps): what the
networks compute for a video is stored once and read back by every later run whose networks and
settings give the same result, so that a sweep over ``tau_corr``, the thresholds, the solver or the cue
runs the networks once per video and only association, output and evaluation per point.

A video's precomputation (``VideoCache``) is stored in pieces, each under a key made of exactly what it
depends on (docs/sweeps.md lists them):

- the candidates (detected + recovered poses per processed frame): the video (its GT file's content and
  length, its image folder), ``boxes``, ``max_age``, and with boxes the pose checkpoint's content hash,
  ``nms_oks``, ``nms_joint_threshold``; with detections their content, ``detection_min_score`` and
  ``labeled_only``; with recovery on (boxes only) every ``recovery*`` key, ``input_size`` and the
  correspondence checkpoint's content hash;
- the ``corr`` part (correspondence values and propagated poses per frame pair): the candidates' key, the
  correspondence checkpoint's content hash, ``input_size``;
- the ``flow`` part (poses moved by DIS flow per frame pair): the candidates' key, ``flow_preset``,
  ``flow_max_side``;
- the ``reid`` part (embeddings of the candidates' boxes): the candidates' key, the re-ID checkpoint's
  content hash.

Changing any of these keys (or a checkpoint's bytes) selects another key, hence a new precomputation;
every other setting (``cue``, ``tau_corr``, ``joint_threshold``, ``min_sim_*``, ``solver``, ``merge``...)
reuses it. A part that is missing is computed on the stored candidates (``precompute_video(...,
base=...)``) and added. Files are written atomically (a temporary file renamed), so parallel sweep workers
may share a folder. The code is not part of the key: delete the folder after changing the precomputation.

Layout: ``DIR/<video>/<candidates key>/{key.json, candidates.pkl, <part>-<part key>.pkl}``.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from corrtrack.tracking.config import TrackingConfig
from corrtrack.tracking.precompute import PARTS, PairData, VideoCache, parts_for
from corrtrack.tracking.video import Video

_HASHES: dict[tuple[str, int, int], str] = {}      # (path, size, mtime_ns) -> sha256: each file read once


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (remembered per path, size and modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def detections_hash(detections: Mapping[int, np.ndarray] | None) -> str | None:
    """A content hash of one video's detections ({image_id: (N, 5)})."""
    if detections is None:
        return None
    h = hashlib.sha256()
    for image_id in sorted(detections):
        h.update(str(image_id).encode())
        h.update(np.ascontiguousarray(detections[image_id], dtype=np.float64).tobytes())
    return h.hexdigest()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def video_identity(video: Video) -> dict[str, Any]:
    """What identifies a video's input: its GT file's content, its length (a cut video differs) and the
    image folder."""
    src = video.gt.path
    gt = file_hash(src) if src and Path(src).is_file() else _digest([f.file_name for f in video.gt.frames])
    return {"name": video.name, "gt_sha256": gt, "frames": len(video.gt.frames),
            "image_root": str(Path(video.image_root).resolve())}


class CacheStore:
    """A folder of precomputations (see the module docstring).

    ``checkpoints``: {"pose" | "corr" | "reid": checkpoint file} of the networks the run uses; a
    network the key needs but whose file is unknown (an in-memory net) makes the store skip that video
    (``load`` returns None, ``save`` writes nothing). ``hits`` / ``misses`` count the pieces read and the
    pieces computed."""

    def __init__(self, root: str | os.PathLike, checkpoints: Mapping[str, str | os.PathLike | None] | None = None):
        self.root = Path(root)
        self.checkpoints = {k: Path(v) for k, v in (checkpoints or {}).items() if v is not None}
        self.hits: dict[str, int] = defaultdict(int)
        self.misses: dict[str, int] = defaultdict(int)

    # ------------------------------------------------------------------------------------------ keys
    def _ckpt(self, kind: str) -> str | None:
        p = self.checkpoints.get(kind)
        return file_hash(p) if p is not None else None

    def keys(self, video: Video, config: TrackingConfig, detections: Mapping | None = None
             ) -> dict[str, dict[str, Any]] | None:
        """{"candidates": {...}, "corr": {...}, "flow": {...}, "reid": {...}}: the dependencies of each
        piece (the part keys hold the candidates' digest); None when a needed checkpoint is unknown."""
        c = config
        cand: dict[str, Any] = {"video": video_identity(video), "boxes": c.boxes, "max_age": c.max_age}
        if c.boxes != "gt-poses":
            cand.update(pose=self._ckpt("pose"), nms_oks=c.nms_oks, nms_joint_threshold=c.nms_joint_threshold)
            if c.boxes == "detections":
                cand.update(detections=detections_hash(detections), detection_min_score=c.detection_min_score,
                            labeled_only=c.labeled_only)
            cand["recovery"] = c.recovery
            if c.recovery:
                cand.update({k: getattr(c, k) for k in TrackingConfig.PRECOMPUTE_KEYS if k.startswith("recovery_")})
                cand.update(input_size=c.input_size, corr=self._ckpt("corr"))
            if cand["pose"] is None or (c.recovery and cand["corr"] is None):
                return None
        base = _digest(cand)
        return {"candidates": cand,
                "corr": {"candidates": base, "corr": self._ckpt("corr"), "input_size": c.input_size},
                "flow": {"candidates": base, "flow_preset": c.flow_preset, "flow_max_side": c.flow_max_side},
                "reid": {"candidates": base, "reid": self._ckpt("reid")}}

    def _folder(self, keys: dict[str, dict[str, Any]], video: Video) -> Path:
        return self.root / video.name / _digest(keys["candidates"])

    @staticmethod
    def _part_file(folder: Path, part: str, keys: dict[str, dict[str, Any]]) -> Path:
        return folder / f"{part}-{_digest(keys[part])}.pkl"

    # -------------------------------------------------------------------------------------- reading
    def load(self, video: Video, config: TrackingConfig, cues: Iterable[str] = (),
             detections: Mapping | None = None) -> VideoCache | None:
        """The stored precomputation of ``video`` for ``config``: its candidates and those parts of the
        ``cues`` that are stored under their current key (``cache.parts`` says which); None when the
        candidates are not stored (or a needed checkpoint is unknown)."""
        keys = self.keys(video, config, detections)
        if keys is None:
            return None
        folder = self._folder(keys, video)
        t0 = time.perf_counter()
        data = _read(folder / "candidates.pkl")
        if data is None:
            self.misses["candidates"] += 1
            return None
        self.hits["candidates"] += 1
        cache = VideoCache(video=video, frames=list(data["frames"]), config=config, window=data["window"])
        cache.candidates, cache.image_hw = data["candidates"], data["image_hw"]
        for part in sorted(parts_for(cues, config)):
            if not _known(keys, part):
                continue
            stored = _read(self._part_file(folder, part, keys))
            if stored is None:
                self.misses[part] += 1
                continue
            self.hits[part] += 1
            _add_part(cache, part, stored)
        cache.seconds["cache"] += time.perf_counter() - t0
        return cache

    # -------------------------------------------------------------------------------------- writing
    def save(self, cache: VideoCache, config: TrackingConfig, detections: Mapping | None = None) -> bool:
        """Store the candidates (when new) and every part of ``cache`` not stored yet; False when the key
        is unknown (nothing written)."""
        keys = self.keys(cache.video, config, detections)
        if keys is None:
            return False
        folder = self._folder(keys, cache.video)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "candidates.pkl").is_file():
            _write(folder / "key.json", json.dumps(keys, indent=2, default=str).encode())
            _write(folder / "candidates.pkl", pickle.dumps(
                {"frames": cache.frames, "window": cache.window, "candidates": cache.candidates,
                 "image_hw": cache.image_hw}, protocol=pickle.HIGHEST_PROTOCOL))
        for part in sorted(p for p in cache.parts & set(PARTS) if _known(keys, p)):
            path = self._part_file(folder, part, keys)
            if not path.is_file():
                _write(path, pickle.dumps(_take_part(cache, part), protocol=pickle.HIGHEST_PROTOCOL))
        return True


def _known(keys: dict[str, dict[str, Any]], part: str) -> bool:
    """A part of a net whose checkpoint file is unknown (an in-memory net) is neither read nor written."""
    return part == "flow" or keys[part][part] is not None


def _take_part(cache: VideoCache, part: str) -> dict[str, Any]:
    if part == "reid":
        return {"embeddings": cache.embeddings}
    if part == "corr":
        return {"corr_maps": cache.corr_maps,
                "pairs": {k: (p.corr, p.propagated) for k, p in cache.pairs.items() if p.corr is not None}}
    return {"pairs": {k: p.flow for k, p in cache.pairs.items() if p.flow is not None}}


def _add_part(cache: VideoCache, part: str, stored: dict[str, Any]) -> None:
    cache.parts.add(part)
    if part == "reid":
        cache.embeddings = stored["embeddings"]
        return
    if part == "corr":
        cache.corr_maps = stored["corr_maps"]
    for (a, b), value in stored["pairs"].items():
        pd = cache.pairs.setdefault((a, b), PairData(a, b))
        if part == "corr":
            pd.corr, pd.propagated = value
        else:
            pd.flow = value


def _read(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        return None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:    # written by other code
        import warnings

        warnings.warn(f"{path}: unreadable cached precomputation ({type(e).__name__}); computing it again")
        return None


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
