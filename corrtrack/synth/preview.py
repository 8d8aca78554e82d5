"""Pictures of a world for people: a COCO contact sheet and one GIF (plus a PNG strip) per video.

Everything is drawn from the files on disk (so the preview shows what a loader will read):
COCO skeletons with filled dots for visible joints (v=2) and hollow rings for occluded ones (v=1);
PoseTrack skeletons coloured by track id with the id written at the head, hollow rings for joints
the visibility sidecar marks occluded, ignore regions outlined in red, simulated detections as thin
grey boxes (val), and a frame banner saying whether the frame is labelled.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from corrtrack import keypoints as K
from corrtrack.imageio import read_rgb
from corrtrack.posetrack import frame_number, load_detections, load_sequence, load_visibility

TILE = (256, 192)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour per track id (golden-ratio hue steps)."""
    h = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


LIMB_COLOURS = [track_colour(i + 3) for i in range(32)]


def draw_skeleton(
    img: np.ndarray,
    kpts: np.ndarray,
    skeleton,
    colour=None,
    flags=None,
    scale: float = 1.0,
    label: str | None = None,
    label_at=None,
) -> None:
    """Draw one person in place. ``kpts`` (17, 3) in original pixels; ``flags`` overrides the v column.

    Joints with flag 2 are filled dots, flag 1 hollow rings; lines join joints with v > 0.
    """
    k = np.asarray(kpts, np.float64).reshape(-1, 3)
    v = np.asarray(flags if flags is not None else k[:, 2])
    p = k[:, :2] * scale
    th = 1
    for e, (a, b) in enumerate(skeleton):
        if k[a, 2] > 0 and k[b, 2] > 0:
            c = colour or LIMB_COLOURS[e % len(LIMB_COLOURS)]
            cv2.line(
                img, tuple(np.round(p[a]).astype(int)), tuple(np.round(p[b]).astype(int)), c, th, cv2.LINE_AA
            )
    for j in range(len(k)):
        if k[j, 2] <= 0:
            continue
        c = colour or (255, 255, 255)
        q = tuple(np.round(p[j]).astype(int))
        r = 2 if scale < 1.5 else 3
        if v[j] == 1:
            cv2.circle(img, q, r, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.circle(img, q, r - 1, c, 1, cv2.LINE_AA)
        else:
            cv2.circle(img, q, r, (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(img, q, r - 1, c, -1, cv2.LINE_AA)
    if label is not None and label_at is not None:
        org = (int(label_at[0] * scale), int(max(10, label_at[1] * scale - 3)))
        cv2.putText(
            img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * max(1.0, scale * 0.8), (0, 0, 0), 3, cv2.LINE_AA
        )
        cv2.putText(
            img,
            label,
            org,
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * max(1.0, scale * 0.8),
            colour or (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def _fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    W, H = size
    h, w = img.shape[:2]
    s = min(W / w, H / h)
    r = cv2.resize(img, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.full((H, W, 3), 30, np.uint8)
    y0, x0 = (H - r.shape[0]) // 2, (W - r.shape[1]) // 2
    out[y0 : y0 + r.shape[0], x0 : x0 + r.shape[1]] = r
    return out


def coco_contact_sheet(root: Path, out: Path, n: int = 24, cols: int = 6) -> Path:
    """Grid of annotated COCO images (val first, then train) with skeletons; returns the PNG path."""
    tiles = []
    for split in ("val2017", "train2017"):
        ann_path = root / "coco" / "annotations" / f"person_keypoints_{split}.json"
        if not ann_path.is_file():
            continue
        with open(ann_path) as f:
            data = json.load(f)
        by_img: dict[int, list] = {}
        for a in data["annotations"]:
            by_img.setdefault(a["image_id"], []).append(a)
        for im in data["images"]:
            if len(tiles) >= n:
                break
            img = read_rgb(root / "coco" / "images" / split / im["file_name"])
            s = 2.0 if max(img.shape[:2]) < 400 else 1.0
            big = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
            base = big.copy()
            for a in by_img.get(im["id"], []):
                x, y, w, h = a["bbox"]
                cv2.rectangle(
                    big, (int(x * s), int(y * s)), (int((x + w) * s), int((y + h) * s)), (255, 255, 255), 1
                )
                draw_skeleton(big, np.asarray(a["keypoints"]).reshape(-1, 3), K.COCO_SKELETON, scale=s)
            big = cv2.addWeighted(big, 0.75, base, 0.25, 0)
            t = _fit(big, TILE)
            cv2.putText(
                t,
                f"{split} #{im['id']} ({len(by_img.get(im['id'], []))} ann)",
                (4, 12),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.38,
                (255, 255, 0),
                1,
                cv2.LINE_AA,
            )
            tiles.append(t)
    if not tiles:
        raise FileNotFoundError(f"no COCO images under {root / 'coco'}")
    rows = [
        np.concatenate(tiles[i : i + cols] + [np.zeros_like(tiles[0])] * (cols - len(tiles[i : i + cols])), 1)
        for i in range(0, len(tiles), cols)
    ]
    sheet = np.concatenate(rows, 0)
    legend = np.full((22, sheet.shape[1], 3), 20, np.uint8)
    cv2.putText(
        legend,
        "COCO keypoints: filled dot = visible (v=2), hollow ring = occluded (v=1); box = visible extent",
        (6, 15),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    sheet = np.concatenate([legend, sheet], 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return out


def render_video_frames(root: Path, split: str, seq: str, scale: float | None = None) -> list[np.ndarray]:
    """Annotated frames of one PoseTrack video (RGB uint8), from the files ``corrtrack.posetrack`` reads."""
    pt = root / "posetrack"
    video = load_sequence(str(pt / "annotations" / split / f"{seq}.json"))
    vis_path = pt / "visibility" / split / f"{seq}.json"
    vis = load_visibility(vis_path) if vis_path.is_file() else {}
    det_path = pt / "detections" / split / f"{seq}.json"
    dets = load_detections(det_path) if det_path.is_file() else {}
    frames = []
    for fr in video.frames:
        img = read_rgb(pt / fr.file_name)
        s = scale or (2.0 if max(img.shape[:2]) < 400 else 1.0)
        big = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        base = big.copy()
        for x, y, w, h, _ in dets.get(fr.image_id, ()):
            cv2.rectangle(
                big, (int(x * s), int(y * s)), (int((x + w) * s), int((y + h) * s)), (190, 190, 190), 1
            )
        for poly in fr.ignore_regions:
            cv2.polylines(big, [(poly * s).astype(np.int32)], True, (255, 40, 40), 1, cv2.LINE_AA)
        for p in fr.persons:
            col = track_colour(p.track_id)
            flags = vis.get(str(p.ann_id))
            draw_skeleton(
                big,
                p.keypoints,
                K.POSETRACK_SKELETON,
                colour=col,
                flags=flags,
                scale=s,
                label=f"id {p.track_id}",
                label_at=(p.head_box[0], p.head_box[1]),
            )
        big = cv2.addWeighted(big, 0.7, base, 0.3, 0)
        banner = (f"{seq}  frame {frame_number(fr.file_name)}/{len(video.frames)}  "
                  + ("labeled" if fr.is_labeled else "unlabeled"))
        cv2.rectangle(big, (0, 0), (big.shape[1], 16), (0, 0, 0), -1)
        cv2.putText(
            big,
            banner,
            (4, 12),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.42,
            (120, 255, 120) if fr.is_labeled else (200, 200, 200),
            1,
            cv2.LINE_AA,
        )
        frames.append(big)
    return frames


def video_gif(frames: list[np.ndarray], out: Path, fps: float = 6.0) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    ims = [Image.fromarray(f).quantize(colors=255, method=Image.Quantize.FASTOCTREE) for f in frames]
    ims[0].save(out, save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0)
    return out


def video_strip(frames: list[np.ndarray], out: Path, n: int = 8, cols: int = 4) -> Path:
    """A PNG grid of ``n`` evenly spaced frames (for viewers that cannot play GIFs)."""
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    tiles = [_fit(frames[i], (frames[0].shape[1] // 2 * 2 // 2, frames[0].shape[0] // 2)) for i in idx]
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.concatenate([np.concatenate(tiles[i : i + cols], 1) for i in range(0, len(tiles), cols)], 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return out


def make_preview(root: str | Path, progress: bool = True) -> Path:
    """Write ``root/preview/``: ``coco_contact_sheet.png``, ``<seq>.gif`` + ``<seq>_strip.png`` per video,
    and ``index.md`` listing them. Returns the preview folder."""
    root = Path(root)
    out = root / "preview"
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Synthetic world preview",
        "",
        "![COCO contact sheet](coco_contact_sheet.png)",
        "",
        "COCO images: filled dots are visible joints (v=2), hollow rings occluded ones (v=1).",
        "",
        "Videos: skeletons coloured by track id (`id N` at the head), hollow rings = occluded joints "
        "(visibility sidecar), red outlines = ignore regions (far crowds), grey boxes = simulated "
        "detections (val), banner = frame number and labelled / unlabelled.",
        "",
    ]
    coco_contact_sheet(root, out / "coco_contact_sheet.png")
    seqs = []
    for split in ("train", "val"):
        d = root / "posetrack" / "annotations" / split
        if d.is_dir():
            seqs += [(split, p.stem) for p in sorted(d.glob("*.json"))]
    from corrtrack.synth.world import read_marker   # (world.py imports this module when it draws a preview)

    marker = (read_marker(root) or {}).get("counts", {}).get("videos", {})
    lines += [
        "| video | split | frames | tracks | look-alike groups | whip pan | preview |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, seq in tqdm(seqs, desc="preview", disable=not progress):
        frames = render_video_frames(root, split, seq)
        video_gif(frames, out / f"{seq}.gif")
        video_strip(frames, out / f"{seq}_strip.png")
        st = marker.get(seq, {})
        lines.append(
            f"| {seq} | {split} | {len(frames)} | {st.get('track_ids', '?')} "
            f"| {st.get('lookalike_groups', '?')} "
            f"| {st.get('whip_pan') or '-'} | [gif]({seq}.gif), [strip]({seq}_strip.png) |"
        )
    (out / "index.md").write_text("\n".join(lines) + "\n")
    return out
