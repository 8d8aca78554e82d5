"""The propagation benchmark: GT poses of frame f-1 propagated to frame f by zero motion, DIS optical flow,
the Siamese argmax and the refined argmax, scored with PCKh@0.5 (rows and columns: ``corrtrack.bench``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corrtrack import correspondence as corr
from corrtrack.flow import dis_flow, warp_poses_by_flow
from corrtrack.imageio import read_rgb
from corrtrack.posetrack import (Frame, Person, frame_number, head_size, list_json_files, load_sequence,
                                 load_visibility)

COLUMNS = ("zero", "dis_flow", "siamese", "refined")
COLUMN_TITLES = {"zero": "zero motion", "dis_flow": "DIS optical flow", "siamese": "Siamese argmax",
                 "refined": "refined argmax"}
ROWS = ("all", "occluded", "moved")
ROW_TITLES = {"all": "all joints", "occluded": "occluded in either frame",
              "moved": "moved > 1/4 person height"}


# ------------------------------------------------------------------------------------------ data

@dataclass
class FramePair:
    """Two consecutive labeled frames of one video and the persons present in both (same track id).
    kp_a / kp_b: (P, 17, 3) GT in image pixels; head_b: (P,) head sizes (0.6 x head diagonal) in b;
    height_a: (P,) person heights in a; vis_a / vis_b: (P, 17) sidecar flags or None."""
    sequence: str
    frame_a: int
    path_a: Path
    path_b: Path
    kp_a: np.ndarray
    kp_b: np.ndarray
    head_b: np.ndarray
    height_a: np.ndarray
    vis_a: np.ndarray | None = None
    vis_b: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


def posetrack_root(data: str | Path) -> Path:
    """DIR/posetrack when it exists, else DIR (which must hold annotations/)."""
    d = Path(data)
    return d / "posetrack" if (d / "posetrack" / "annotations").is_dir() else d


def _person_height(p: Person) -> float:
    """The person's box height, else the vertical extent of its labeled joints (0 with fewer than 2)."""
    if p.bbox is not None and p.bbox[3] > 0:
        return float(p.bbox[3])
    v = p.keypoints[p.keypoints[:, 2] > 0]
    return float(v[:, 1].max() - v[:, 1].min()) if len(v) >= 2 else 0.0


def _tracked(frame: Frame) -> dict[int, Person]:
    """The frame's persons by track id (persons without one are left out; a repeated id: the last)."""
    return {int(p.track_id): p for p in frame.persons if p.track_id is not None}


def _sequence_pairs(seq, root: Path, vis: dict[str, np.ndarray] | None) -> list[FramePair]:
    frames = {frame_number(fr.file_name): fr for fr in seq.frames if _tracked(fr)}
    pairs = []
    for n in sorted(frames):
        if n - 1 not in frames:
            continue
        fa, fb = frames[n - 1], frames[n]
        pa, pb = _tracked(fa), _tracked(fb)
        rows = []
        for t in sorted(set(pa) & set(pb)):
            a, b = pa[t], pb[t]
            if b.head_box is None:
                continue
            head = head_size(b.head_box)
            if head <= 0 or not ((a.keypoints[:, 2] > 0) & (b.keypoints[:, 2] > 0)).any():
                continue
            va = vb = None
            if vis is not None:
                va, vb = vis.get(str(a.ann_id)), vis.get(str(b.ann_id))
            rows.append((a.keypoints, b.keypoints, head, _person_height(a), va, vb))
        if not rows:
            continue
        has_vis = all(r[4] is not None and r[5] is not None for r in rows)
        pairs.append(FramePair(
            sequence=seq.name, frame_a=n - 1, path_a=root / fa.file_name, path_b=root / fb.file_name,
            kp_a=np.stack([r[0] for r in rows]), kp_b=np.stack([r[1] for r in rows]),
            head_b=np.array([r[2] for r in rows]), height_a=np.array([r[3] for r in rows]),
            vis_a=np.stack([r[4] for r in rows]) if has_vis else None,
            vis_b=np.stack([r[5] for r in rows]) if has_vis else None))
    return pairs


def load_pairs(data: str | Path, split: str = "val") -> tuple[list[FramePair], bool]:
    """Consecutive labeled frame pairs of every video of ``split`` (files read by ``corrtrack.posetrack``);
    also whether visibility sidecars were found. Frames count as consecutive only when their frame
    numbers (``posetrack.frame_number``) differ by exactly 1."""
    root = posetrack_root(data)
    ann_dir = root / "annotations" / split
    files = list_json_files(str(ann_dir), sort=True) if ann_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no PoseTrack annotation files in {ann_dir}")
    pairs: list[FramePair] = []
    any_vis = False
    for f in files:
        seq = load_sequence(f)
        vis_file = root / "visibility" / split / Path(f).name
        vis = load_visibility(vis_file) if vis_file.is_file() else None
        any_vis |= vis is not None
        pairs += _sequence_pairs(seq, root, vis)
    return pairs, any_vis


# ------------------------------------------------------------------------------------------ metric

def pckh_hits(pred: np.ndarray, gt: np.ndarray, head: np.ndarray, thresh: float = 0.5) -> np.ndarray:
    """(P, J) bool: predicted joint within ``thresh`` x head size of the GT (image pixels)."""
    d = np.linalg.norm(np.asarray(pred)[..., :2] - np.asarray(gt)[..., :2], axis=-1)
    return d <= thresh * head[:, None]


def _row_masks(pair: FramePair) -> dict[str, np.ndarray | None]:
    base = (pair.kp_a[..., 2] > 0) & (pair.kp_b[..., 2] > 0)
    moved = np.linalg.norm(pair.kp_b[..., :2] - pair.kp_a[..., :2], axis=-1) > 0.25 * pair.height_a[:, None]
    occl = None
    if pair.vis_a is not None and pair.vis_b is not None:
        occl = base & ((pair.vis_a == 1) | (pair.vis_b == 1))
    return {"all": base, "occluded": occl, "moved": base & moved}


def run_propagation(data: str | Path, ckpt: str | Path | None = None, split: str = "val",
                    input_size: int = 512, flow_preset: str = "medium", device: str = "cpu",
                    max_pairs: int | None = None, progress: bool = True) -> dict:
    """PCKh@0.5 of propagated GT poses for every row x column (see module docstring). Returns a dict with
    ``table[row][column] = {"pckh": float | None, "joints": int}`` and run information."""
    from tqdm import tqdm

    pairs, any_vis = load_pairs(data, split)
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    model = corr.load_correspondence_checkpoint(ckpt, device=device, input_size=input_size) if ckpt else None
    hits = {r: {c: 0 for c in COLUMNS} for r in ROWS}
    counts = {r: 0 for r in ROWS}
    occl_available = any_vis and all(p.vis_a is not None for p in pairs)
    cache: dict[Path, np.ndarray] = {}

    def image(path: Path) -> np.ndarray:
        if path not in cache:
            if len(cache) > 2:
                cache.pop(next(iter(cache)))
            cache[path] = read_rgb(path)
        return cache[path]

    t0 = time.perf_counter()
    for pair in tqdm(pairs, desc="propagation", unit="pair", disable=not progress):
        ia, ib = image(pair.path_a), image(pair.path_b)
        preds = {"zero": pair.kp_a, "dis_flow": warp_poses_by_flow(pair.kp_a, dis_flow(ia, ib, flow_preset))}
        if model is not None:
            res = model.propagate_both(ia, ib, pair.kp_a, key_a=(pair.sequence, pair.frame_a),
                                       key_b=(pair.sequence, pair.frame_a + 1))
            preds["siamese"] = res.siamese_points
            if model.refinement is not None:
                preds["refined"] = res.points
        masks = _row_masks(pair)
        for r in ROWS:
            m = masks[r]
            if m is None:
                continue
            counts[r] += int(m.sum())
            for c, pred in preds.items():
                hits[r][c] += int((pckh_hits(pred, pair.kp_b, pair.head_b) & m).sum())
    elapsed = time.perf_counter() - t0
    available = {"zero": True, "dis_flow": True, "siamese": model is not None,
                 "refined": model is not None and model.refinement is not None}
    table = {}
    for r in ROWS:
        table[r] = {}
        for c in COLUMNS:
            ok = available[c] and (r != "occluded" or occl_available) and counts[r] > 0
            table[r][c] = {"pckh": 100.0 * hits[r][c] / counts[r] if ok else None,
                           "joints": counts[r] if (r != "occluded" or occl_available) else None}
    return {"table": table, "pairs": len(pairs), "sequences": len({p.sequence for p in pairs}),
            "data": str(data), "split": split, "checkpoint": getattr(model, "info", {}).get("checkpoint"),
            "input_size": input_size, "flow": f"OpenCV DIS ({flow_preset})", "seconds": round(elapsed, 2),
            "occlusion_sidecar": occl_available}


def markdown_table(result: dict) -> str:
    """The propagation table as markdown (PCKh@0.5 in %, n/a where a row or column is unavailable)."""
    head = "| joints | n | " + " | ".join(COLUMN_TITLES[c] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in ROWS:
        row = result["table"][r]
        n = next(iter(row.values()))["joints"]
        cells = ["n/a" if row[c]["pckh"] is None else f"{row[c]['pckh']:.1f}" for c in COLUMNS]
        lines.append(f"| {ROW_TITLES[r]} | {'n/a' if n is None else n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
