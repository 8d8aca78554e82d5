"""Benchmarks of the correspondence stage.

    python -m corrtrack.bench propagation --data DIR [--ckpt CKPT_OR_RUN_DIR] [--split val]
                                          [--input-size 512] [--out results.json]
    python -m corrtrack.bench speed

``propagation``: on every pair of consecutive labeled frames (f-1, f) of the PoseTrack-format videos
under DIR/posetrack (or DIR itself when it holds annotations/), the GT poses of frame f-1 are propagated
to frame f and scored with PCKh@0.5 (head size = 0.6 x head-box diagonal, SPEC §6) against the GT of
frame f (persons matched by track id). Rows: all joints; joints occluded in either frame (from the
synthetic world's sidecar ``visibility/<split>/<seq>.json``, flags 0 outside / 1 occluded / 2 visible;
n/a without it); joints that moved more than a quarter of the person's height. Columns: zero motion,
OpenCV DIS optical flow, Siamese argmax, refined argmax (n/a without a checkpoint / refinement net).

``speed``: (a) batched affinity vs a per-keypoint Python loop; (b) training pairs per second of the
Siamese net (forward + backward + Adam step). The data pipeline's pairs per second are measured by
``python -m experiments.stages.correspondence bench-data`` (the datamodules are not part of corrtrack).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from corrtrack import correspondence as corr
from corrtrack.flow import dis_flow, warp_poses_by_flow
from corrtrack.imageio import read_rgb
from corrtrack.keypoints import NUM_JOINTS
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


COLUMN_COLOURS = {"zero": (150, 150, 150), "dis_flow": (60, 120, 230), "siamese": (70, 170, 70),
                  "refined": (200, 110, 40)}  # BGR


def plot_table(result: dict, path: str | Path) -> Path:
    """Grouped bar chart of the propagation table (PCKh@0.5 per row, one bar per column) as a PNG,
    drawn with OpenCV (the core does not depend on matplotlib)."""
    import cv2

    W, H, top, bottom, left = 900, 420, 60, 70, 60
    img = np.full((H, W, 3), 255, np.uint8)
    plot_h = H - top - bottom
    group_w = (W - left - 20) / len(ROWS)
    bar_w = int(group_w * 0.8 / len(COLUMNS))
    for v in range(0, 101, 20):  # y grid and labels (percent)
        y = int(top + plot_h * (1 - v / 100))
        cv2.line(img, (left, y), (W - 20, y), (225, 225, 225), 1)
        cv2.putText(img, f"{v}", (left - 35, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
    for gi, r in enumerate(ROWS):
        x0 = int(left + gi * group_w + group_w * 0.1)
        for ci, c in enumerate(COLUMNS):
            v = result["table"][r][c]["pckh"]
            x = x0 + ci * bar_w
            if v is None:
                cv2.putText(img, "n/a", (x + 2, top + plot_h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (120, 120, 120),
                            1, cv2.LINE_AA)
                continue
            y = int(top + plot_h * (1 - v / 100))
            cv2.rectangle(img, (x + 2, y), (x + bar_w - 2, top + plot_h), COLUMN_COLOURS[c], -1)
            cv2.putText(img, f"{v:.1f}", (x + 2, y - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (30, 30, 30), 1, cv2.LINE_AA)
        cv2.putText(img, ROW_TITLES[r], (x0, H - bottom + 25), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    lx = left
    for c in COLUMNS:  # legend
        cv2.rectangle(img, (lx, 20), (lx + 14, 34), COLUMN_COLOURS[c], -1)
        cv2.putText(img, COLUMN_TITLES[c], (lx + 20, 32), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        lx += 30 + 10 * len(COLUMN_TITLES[c])
    cv2.putText(img, f"PCKh@0.5 (%), {result['pairs']} frame pairs, {Path(str(result['data'])).name}",
                (left, H - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")
    return path


# ------------------------------------------------------------------------------------------ speed

def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def affinity_speed(persons: int = 8, joints: int = NUM_JOINTS, size: int = 64, channels: int = 32,
                   repeats: int = 5) -> dict:
    """Seconds per frame pair of the batched affinity (one gather + one grouped conv) vs a Python loop
    over persons x joints (one patch slice + one conv2d each); and their ratio."""
    g = torch.Generator().manual_seed(0)
    f1 = torch.nn.functional.normalize(torch.randn(1, channels, size, size, generator=g), dim=1)
    f2 = torch.nn.functional.normalize(torch.randn(1, channels, size, size, generator=g), dim=1)
    kpts = torch.rand(1, persons, joints, 2, generator=g) * (size - 1)

    def batched():
        with torch.no_grad():
            return corr.softmax_maps(corr.affinity(corr.extract_descriptors(f1, kpts), f2))

    def loop():
        out = []
        with torch.no_grad():
            pad = torch.nn.functional.pad(f1, (1, 1, 1, 1))
            for p in range(persons):
                for j in range(joints):
                    x, y = (int(v) for v in torch.floor(kpts[0, p, j] + 0.5))
                    d = pad[:, :, y:y + 3, x:x + 3]
                    a = torch.nn.functional.conv2d(f2, d, padding=1)
                    out.append(torch.softmax(a.flatten(), 0))
        return out

    tb, tl = _time(batched, repeats), _time(loop, repeats)
    return {"persons": persons, "joints": joints, "size": size, "channels": channels,
            "batched_ms": 1000 * tb, "loop_ms": 1000 * tl, "speedup": tl / tb}


AUTOCAST = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


def training_speed(variant: str = "release", width: float = 0.25, input_size: int = 128, batch_size: int = 8,
                   persons: int = 4, steps: int = 3, threads: int | None = None, device: str = "cpu",
                   precision: str = "32") -> dict:
    """Training pairs per second of the Siamese stage on this machine: forward of both images, affinity
    maps of ``persons`` x 17 random keypoints per pair, BCE loss (eq. 4), backward, Adam step.
    ``precision``: "32", or "bf16" / "16" for autocast mixed precision (with a gradient scaler for "16"),
    as Lightning's ``bf16-mixed`` / ``16-mixed`` do."""
    from corrtrack.nets import SiameseNet, count_parameters

    if precision not in AUTOCAST:
        raise ValueError(f"precision must be one of {', '.join(AUTOCAST)} (got {precision!r})")
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    net = SiameseNet(variant, width=width).train()
    net = net.to(dev, memory_format=torch.channels_last)  # as training does (CorrespondenceModule.on_fit_start)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    dtype = AUTOCAST[precision]
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype is torch.float16)
    x1 = torch.randn(batch_size, 3, input_size, input_size, device=dev)
    x2 = torch.randn(batch_size, 3, input_size, input_size, device=dev)
    h = input_size // 4
    n = batch_size * persons * NUM_JOINTS
    kpts = torch.rand(n, 2, device=dev) * (h - 1)
    bidx = torch.arange(batch_size, device=dev).repeat_interleave(persons * NUM_JOINTS)
    cells = torch.floor(torch.rand(n, 2, device=dev) * h).long()
    inside = torch.rand(n, device=dev) > 0.1

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            f1, f2 = net.forward_pair(x1, x2)
            a = corr.affinity_maps(f1, f2, kpts, bidx)
            loss = corr.correspondence_bce(corr.log_softmax_maps(a.float()), cells, inside)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    sec = _time(step, steps)
    out = {"variant": variant, "width": width, "input_size": input_size, "batch_size": batch_size,
           "keypoints_per_pair": persons * NUM_JOINTS, "params": count_parameters(net), "device": str(dev),
           "precision": precision, "threads": torch.get_num_threads(), "sec_per_step": sec,
           "pairs_per_s": batch_size / sec}
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(dev)
        out["max_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    return out


# ------------------------------------------------------------------------------------------ CLI

def _print_propagation(result: dict) -> None:
    print(f"PCKh@0.5 of propagated GT poses, {result['pairs']} consecutive labeled frame pairs from "
          f"{result['sequences']} {result['split']} videos ({result['data']})")
    print(markdown_table(result))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m corrtrack.bench", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("propagation", help="PCKh of propagated poses: zero motion, DIS flow, Siamese, refined")
    p.add_argument("--data", required=True, help="a world/dataset folder holding posetrack/ (or a PoseTrack root)")
    p.add_argument("--ckpt", default=None, help="refine (or siamese) stage checkpoint or run directory; "
                                                "without it only the zero-motion and flow columns are filled")
    p.add_argument("--split", default="val")
    p.add_argument("--input-size", type=int, default=512, help="whole-frame letterbox size (divisible by 32)")
    p.add_argument("--flow-preset", default="medium", choices=["ultrafast", "fast", "medium"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-pairs", type=int, default=None)
    p.add_argument("--out", default=None, help="JSON file (a markdown table is written next to it)")
    s = sub.add_parser("speed", help="batched vs looped affinity; training pairs/s")
    s.add_argument("--persons", type=int, default=8)
    s.add_argument("--size", type=int, default=64, help="feature map size of the affinity benchmark")
    s.add_argument("--variant", default="release", choices=["paper", "release"])
    s.add_argument("--width", type=float, default=0.25)
    s.add_argument("--input-size", type=int, default=128, help="training pair size")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--train-persons", type=int, default=4, help="persons queried per training pair")
    s.add_argument("--steps", type=int, default=3)
    s.add_argument("--device", default="cpu", help="device of the training-speed figure (cpu, cuda, cuda:1)")
    s.add_argument("--precision", default="32", choices=list(AUTOCAST),
                   help="training-speed figure in fp32 or autocast bf16 / fp16 mixed precision")
    s.add_argument("--skip-training", action="store_true")
    s.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    if args.command == "propagation":
        result = run_propagation(args.data, args.ckpt, split=args.split, input_size=args.input_size,
                                 flow_preset=args.flow_preset, device=args.device, max_pairs=args.max_pairs)
        _print_propagation(result)
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2))
            out.with_suffix(".md").write_text(markdown_table(result))
            plot_table(result, out.with_suffix(".png"))
            print(f"wrote {out}, {out.with_suffix('.md')} and the bar chart {out.with_suffix('.png')}")
        return 0

    result = {"affinity": affinity_speed(args.persons, NUM_JOINTS, args.size)}
    a = result["affinity"]
    print(f"(a) affinity of {a['persons']} persons x {a['joints']} joints at {a['size']}x{a['size']}: "
          f"batched {a['batched_ms']:.2f} ms, per-keypoint loop {a['loop_ms']:.2f} ms -> {a['speedup']:.1f}x")
    if not args.skip_training:
        t = training_speed(args.variant, args.width, args.input_size, args.batch_size, args.train_persons,
                           args.steps, device=args.device, precision=args.precision)
        result["training"] = t
        where = t.get("gpu") or f"{t['threads']} threads"
        print(f"(b) Siamese training ({t['variant']}, width {t['width']}, {t['input_size']}px, batch "
              f"{t['batch_size']}, {t['params'] / 1e6:.2f} M params, {where}, precision {t['precision']}): "
              f"{t['pairs_per_s']:.1f} pairs/s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
