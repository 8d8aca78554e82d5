"""Generate a synthetic world on disk: COCO images, PoseTrack videos, detections, sidecars, marker.

Every image and video draws from its own random stream, seeded by (seed, preset, split, index), so the
output is identical for a seed whatever the number of worker processes, and one item never shifts
another's randomness. Worlds are written into a temporary sibling folder and renamed into place only
when complete, with a marker ``world.json`` written last; a half-written world is never mistaken for
a complete one.

Nothing a user put into a world's folder is ever deleted: ``files.tsv`` lists every file the generator
wrote (path and size); when a stale world is regenerated, the old folder is deleted only if it holds
exactly those files (plus a ``preview/``), and is otherwise kept beside the new world as
``<name>.previous-<time>``, which is reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from corrtrack import keypoints as K
from corrtrack.synth import annotate as A
from corrtrack.synth.presets import Preset, get_preset
from corrtrack.synth.render import render_scene
from corrtrack.synth.scenes import frame_scene, make_video_script, sample_still

VERSION = 1
MARKER = "world.json"
MANIFEST = "files.tsv"     # every generated file: relative path <tab> size in bytes
OWN_DIRS = ("preview",)    # drawn into a world (also later, by the preview command): generated too
TRAIN_SEQ_BASE = 1  # train videos: 000001_mpii_train, 000002_mpii_train, ...
VAL_SEQ_BASE = 5001  # val videos:   005001_mpii_test, 005002_mpii_test, ...
COCO_SPLITS = ("train2017", "val2017")
PT_SPLITS = ("train", "val")
JPEG_QUALITY = 92


def _rng(seed: int, preset: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(preset.encode()), *[int(k) for k in keys]])


def coco_categories() -> list[dict]:
    return [
        {
            "supercategory": "person",
            "id": 1,
            "name": "person",
            "keypoints": list(K.COCO_NAMES),
            "skeleton": K.coco_skeleton_1based(),
        }
    ]


def posetrack_categories() -> list[dict]:
    return [
        {
            "supercategory": "person",
            "id": 1,
            "name": "person",
            "keypoints": list(K.POSETRACK_NAMES),
            "skeleton": K.posetrack_skeleton_1based(),
        }
    ]


def posetrack_image_id(seq: int, frame: int) -> int:
    """Image id as in the real PoseTrack 2018 files: 1 SSSSSS FFFF (source 1 = mpii)."""
    return 10000000000 + seq * 10000 + frame


def labeled_frames(n_frames: int, split: str) -> np.ndarray:
    """``(n_frames,)`` bool: which frames carry annotations.

    Like the real data, train videos are labelled densely over a central span (60 % of the frames);
    val videos densely over a central span (50 %) plus every 4th frame elsewhere.
    """
    lab = np.zeros(n_frames, bool)
    if split == "train":
        s = int(round(0.2 * n_frames))
        lab[s : s + max(2, int(round(0.6 * n_frames)))] = True
    else:
        s = int(round(0.25 * n_frames))
        lab[s : s + max(2, int(round(0.5 * n_frames)))] = True
        lab[::4] = True
    return lab


def _photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    gain = rng.uniform(0.94, 1.06)
    noise = rng.normal(0, 2.0, img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) * gain + noise, 0, 255).astype(np.uint8)


def _write_jpg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(
        str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    ):
        raise OSError(f"could not write image {path}")


# --------------------------------------------------------------------------------------------------
# Work items (module-level so that worker processes can run them)
# --------------------------------------------------------------------------------------------------
def _coco_item(args: tuple) -> dict:
    """Render COCO image ``index``; returns its image entry and annotations (no ids).

    ``args`` = (preset or preset name, seed, split index (0 train2017, 1 val2017), image index, root folder).
    """
    preset, seed, split_i, index, root = args
    preset = get_preset(preset) if isinstance(preset, str) else preset
    preset_name = preset.name
    fname = f"{index + 1:012d}.jpg"
    for attempt in range(8):  # resample an image that ends up with nobody annotated
        rng = _rng(seed, preset_name, 0, split_i, index, attempt)
        scene = sample_still(rng, preset)
        img, rank, stats = render_scene(scene.background, scene.items, blur_exposure=0.0)
        st_of = {id(it): st for it, st in zip(scene.items, stats)}
        anns = []
        for v in scene.people:
            a = A.coco_person(v, st_of[id(v)], rank, preset.min_visible_frac)
            if a is not None:
                anns.append(a)
        if anns:
            break
    img = _photometric(rng, img)
    H, W = img.shape[:2]
    _write_jpg(Path(root) / "coco" / "images" / COCO_SPLITS[split_i] / fname, img)
    return {"image": {"file_name": fname, "width": W, "height": H, "id": index + 1}, "annotations": anns}


def _coco_chunk(jobs: list[tuple]) -> list[dict]:
    return [_coco_item(j) for j in jobs]


def _labelled_frame(posed: list, st_of: dict, rank, W: int, H: int, image_id: int,
                    min_visible_frac: float) -> tuple[list, list, list[tuple[dict, list[int]]]]:
    """Ignore regions (x and y lists of polygons) and the annotations with their sidecar flags of one
    labelled frame: crowd groups become ignore polygons; annotated people ordered by track id."""
    ign_x: list[list[float]] = []
    ign_y: list[list[float]] = []
    polys = []
    for g in sorted({a.crowd_group for a, _ in posed if a.role == "crowd"}):
        members = [
            v for a, v in posed if a.role == "crowd" and a.crowd_group == g and st_of[id(v)].amodal_px > 0
        ]
        poly = A.crowd_polygon(members, W, H)
        if poly is not None:
            polys.append(poly)
            ign_x.append([float(x) for x in poly[:, 0]])
            ign_y.append([float(y) for y in poly[:, 1]])
    cands = []
    for actor, v in posed:
        if actor.role == "crowd":
            continue
        out = A.posetrack_person(v, st_of[id(v)], rank, min_visible_frac)
        if out is None:
            continue
        ann, flags = out
        ann["track_id"] = int(actor.track_id)
        ann["_flags"] = flags
        cands.append(ann)
    cands = A.pckh_conflicts(A.drop_fully_ignored(cands, polys))
    frame_anns = []
    for k, ann in enumerate(sorted(cands, key=lambda a: a["track_id"])):
        ann["image_id"] = image_id
        ann["id"] = image_id * 100 + k
        flags = ann.pop("_flags")
        ann.pop("_visible_frac")
        frame_anns.append((ann, flags))
    return ign_x, ign_y, frame_anns


def _frame_detections(det_rng: np.random.Generator, script, t: int, views: list, st_of: dict, image_id: int,
                      preset: Preset) -> list[dict]:
    """Simulated detections of frame ``t`` (val videos)."""
    W, H = script.size
    return A.simulate_detections(
        det_rng,
        views,
        [st_of[id(v)] for v in views],
        image_id,
        W,
        H,
        focal_px=script.camera.focal * script.zoom[t],
        horizon=float((script.camera_affine(t) @ np.array([0.0, script.camera.horizon, 1.0]))[1]),
        cam_h=script.camera.cam_h,
        fp_rate=preset.det_fp_rate,
        jitter=preset.det_jitter,
        miss=preset.det_miss,
    )


ANNOTATION_KEYS = ("image_id", "id", "track_id", "category_id", "keypoints", "bbox", "bbox_head")


def _video_item(args: tuple, on_frame: Callable[[], None] | None = None) -> dict:
    """Render one video; writes its frames and returns its PoseTrack JSON, sidecar and detections.

    ``args`` = (preset or preset name, seed, split index (0 train, 1 val), video index, root folder).
    """
    preset, seed, split_i, index, root = args
    preset = get_preset(preset) if isinstance(preset, str) else preset
    split = PT_SPLITS[split_i]
    seq = (TRAIN_SEQ_BASE if split == "train" else VAL_SEQ_BASE) + index
    seq_name = f"{seq:06d}_mpii_{'train' if split == 'train' else 'test'}"
    rng = _rng(seed, preset.name, 1, split_i, index)
    det_rng = _rng(seed, preset.name, 2, split_i, index)
    photo_rng = _rng(seed, preset.name, 3, split_i, index)
    script = make_video_script(rng, preset)
    T = script.n_frames
    W, H = script.size
    lab = labeled_frames(T, split)
    images, annotations, detections = [], [], []
    visibility: dict[str, list[int]] = {}
    stats_out = {"frames": T, "labeled": 0, "annotations": 0, "occluded_joints": 0, "labeled_joints": 0,
                 "track_ids": set()}
    for t in range(T):
        bg, items, posed, bg_vel = frame_scene(script, t)
        img, rank, stats = render_scene(bg, items, blur_exposure=script.blur_exposure, background_velocity=bg_vel)
        img = _photometric(photo_rng, img)
        frame_no = t + 1
        image_id = posetrack_image_id(seq, frame_no)
        rel = f"images/{split}/{seq_name}/{frame_no:06d}.jpg"
        _write_jpg(Path(root) / "posetrack" / rel, img)
        st_of = {id(it): st for it, st in zip(items, stats)}
        ign_x, ign_y, frame_anns = (_labelled_frame(posed, st_of, rank, W, H, image_id, preset.min_visible_frac)
                                    if lab[t] else ([], [], []))
        images.append({"file_name": rel, "id": image_id, "frame_id": image_id, "vid_id": f"{seq:06d}",
                       "nframes": T, "is_labeled": bool(frame_anns), "ignore_regions_x": ign_x,
                       "ignore_regions_y": ign_y, "has_no_densepose": True, "width": W, "height": H})
        for ann, flags in frame_anns:
            annotations.append({k: ann[k] for k in ANNOTATION_KEYS})
            visibility[str(ann["id"])] = flags
            stats_out["annotations"] += 1
            stats_out["labeled_joints"] += sum(f > 0 for f in flags)
            stats_out["occluded_joints"] += sum(f == 1 for f in flags)
            stats_out["track_ids"].add(ann["track_id"])
        stats_out["labeled"] += int(bool(frame_anns))
        if split == "val":
            detections += _frame_detections(det_rng, script, t, [v for _, v in posed], st_of, image_id, preset)
        if on_frame is not None:
            on_frame()
    stats_out["track_ids"] = len(stats_out["track_ids"])
    stats_out.update({k: v for k, v in script.info.items() if k != "whip_pan"})
    stats_out["whip_pan"] = script.info.get("whip_pan")
    return {
        "seq_name": seq_name,
        "split": split,
        "frames": T,
        "video": {"images": images, "annotations": annotations, "categories": posetrack_categories()},
        "visibility": visibility,
        "detections": detections if split == "val" else None,
        "stats": stats_out,
    }


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------
def _default_workers(preset: Preset) -> int:
    env = os.environ.get("CORRTRACK_SYNTH_WORKERS")
    if env:
        return max(1, int(env))
    if preset.name in ("tiny",):
        return 1
    return max(1, min(4, (os.cpu_count() or 1)))


def _dump(path: Path, obj, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, separators=None if indent else (",", ":"))


def _frames_of(preset: Preset, seed: int, split_i: int, index: int) -> int:
    rng = _rng(seed, preset.name, 1, split_i, index)
    return int(rng.integers(preset.frames[0], preset.frames[1] + 1))


def _run_jobs(coco_jobs: list[tuple], video_jobs: list[tuple], workers: int, bar) -> tuple[list, list]:
    """Render every COCO image and video (in worker processes when ``workers`` > 1); results in job order."""
    coco_results: list[dict] = []
    video_results: list[dict] = []
    if workers > 1:
        # Videos first (the longest jobs), COCO images in chunks; results are put back in job order.
        chunks = [coco_jobs[i : i + 8] for i in range(0, len(coco_jobs), 8)]
        with ProcessPoolExecutor(max_workers=workers) as ex:
            futs = {ex.submit(_video_item, j): ("v", k) for k, j in enumerate(video_jobs)}
            futs.update({ex.submit(_coco_chunk, c): ("c", k) for k, c in enumerate(chunks)})
            vids: dict[int, dict] = {}
            cocos: dict[int, list[dict]] = {}
            for fut in as_completed(futs):
                kind, k = futs[fut]
                if kind == "v":
                    vids[k] = fut.result()
                    bar.update(vids[k]["frames"])
                else:
                    cocos[k] = fut.result()
                    bar.update(len(cocos[k]))
        coco_results = [r for k in range(len(chunks)) for r in cocos[k]]
        video_results = [vids[k] for k in range(len(video_jobs))]
    else:
        for j in coco_jobs:
            coco_results.append(_coco_item(j))
            bar.update(1)
        for j in video_jobs:
            video_results.append(_video_item(j, on_frame=lambda: bar.update(1)))
    return coco_results, video_results


def _write_coco(root: Path, preset: Preset, seed: int, coco_results: list[dict]) -> dict:
    """One COCO json per split, ids assigned in index order (deterministic); returns the counts."""
    counts: dict = {}
    for s, split in enumerate(COCO_SPLITS):
        n = (preset.coco_train, preset.coco_val)[s]
        res = coco_results[:n] if s == 0 else coco_results[preset.coco_train :]
        images, anns = [], []
        for r in res:
            images.append(r["image"])
            for a in r["annotations"]:
                anns.append({"id": len(anns) + 1, "image_id": r["image"]["id"], **a})
        _dump(
            root / "coco" / "annotations" / f"person_keypoints_{split}.json",
            {
                "info": {
                    "description": f"corrtrack synthetic world '{preset.name}' seed {seed} "
                    "(COCO keypoints format)",
                    "version": str(VERSION),
                    "year": 2020,
                },
                "licenses": [],
                "images": images,
                "annotations": anns,
                "categories": coco_categories(),
            },
        )
        counts[f"coco_{split}"] = {
            "images": len(images),
            "annotations": len(anns),
            "keypoints_visible": int(sum(sum(1 for v in a["keypoints"][2::3] if v == 2) for a in anns)),
            "keypoints_occluded": int(sum(sum(1 for v in a["keypoints"][2::3] if v == 1) for a in anns)),
        }
    return counts


def _write_posetrack(root: Path, video_results: list[dict]) -> dict:
    """The PoseTrack files of every video (annotations, visibility sidecar, val detections) and the
    READMEs of the sidecar folders; returns the counts per split and per video."""
    counts: dict = {}
    per_video = {}
    for r in video_results:
        split, name = r["split"], r["seq_name"]
        _dump(root / "posetrack" / "annotations" / split / f"{name}.json", r["video"])
        _dump(root / "posetrack" / "visibility" / split / f"{name}.json", r["visibility"])
        if r["detections"] is not None:
            _dump(root / "posetrack" / "detections" / split / f"{name}.json", r["detections"])
        per_video[name] = r["stats"]
    for split in PT_SPLITS:
        vids = [r for r in video_results if r["split"] == split]
        counts[f"posetrack_{split}"] = {
            "videos": len(vids),
            "frames": sum(r["frames"] for r in vids),
            "labeled_frames": sum(r["stats"]["labeled"] for r in vids),
            "annotations": sum(r["stats"]["annotations"] for r in vids),
        }
    det_dir = root / "posetrack" / "detections"
    det_dir.mkdir(parents=True, exist_ok=True)
    (det_dir / "README.md").write_text(DETECTIONS_README)
    (root / "posetrack" / "visibility" / "README.md").write_text(VISIBILITY_README)
    counts["videos"] = per_video
    return counts


def _write_world(root: Path, preset: Preset, seed: int, progress: bool, workers: int) -> dict:
    """Write all files of a world into ``root`` (which must be empty); returns the counts."""
    t0 = time.time()
    coco_jobs = [
        (preset, seed, s, i, str(root))
        for s, n in enumerate((preset.coco_train, preset.coco_val))
        for i in range(n)
    ]
    video_jobs = [
        (preset, seed, s, i, str(root))
        for s, n in enumerate((preset.train_videos, preset.val_videos))
        for i in range(n)
    ]
    n_frames = sum(_frames_of(preset, seed, j[2], j[3]) for j in video_jobs)
    bar = tqdm(
        total=len(coco_jobs) + n_frames,
        desc=f"synthetic world '{preset.name}'",
        unit="img",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        coco_results, video_results = _run_jobs(coco_jobs, video_jobs, workers, bar)
    finally:
        bar.close()
    counts = {**_write_coco(root, preset, seed, coco_results), **_write_posetrack(root, video_results)}
    counts["seconds"] = round(time.time() - t0, 1)
    return counts


DETECTIONS_README = """# Simulated detections (synthetic world)

These files are **simulated**, not the output of a real detector. One JSON per val video, a list of
`{"image_id", "category_id": 1, "bbox": [x, y, w, h], "score"}` (COCO results format) for every frame,
labelled or not. They are made from the ground truth: each rendered person is missed with a probability
that grows with its occlusion, truncation and small size; box jitter grows the same way; occluded people
sometimes get a second, partial box; false positives are person-sized boxes on the ground plane.
"""

VISIBILITY_README = """# Visibility sidecar (synthetic world only; not a PoseTrack format)

`<split>/<sequence>.json` maps each PoseTrack annotation `id` (as a string) to 17 visibility flags in
PoseTrack slot order: 0 = outside the image or not labelled (ears are never labelled), 1 = labelled but
occluded (covered by a nearer person or object, or a face point on the far side of the head),
2 = visible. The PoseTrack files themselves mark every labelled joint with 1, as the real data does.
"""


def _marker(root: Path) -> dict | None:
    p = root / MARKER
    if not p.is_file():
        return None
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    """Inter-process lock beside ``root`` (several ranks may ask for the same world at once)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    path = root.parent / f".{root.name}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _generate_into(
    root: Path, preset: Preset, seed: int, progress: bool, workers: int | None, preview: bool
) -> Path:
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}-{int(time.time() * 1000) % 10**9}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        counts = _write_world(tmp, preset, seed, progress, workers or _default_workers(preset))
        # The marker may be written before the preview: only the final rename publishes the world.
        with open(tmp / MARKER, "w") as f:
            json.dump(
                {
                    "format": "corrtrack-synth",
                    "version": VERSION,
                    "preset": preset.name,
                    "seed": int(seed),
                    "counts": counts,
                    "preset_config": preset.to_dict(),
                },
                f,
                indent=1,
            )
        _write_manifest(tmp)
        if preview:
            from corrtrack.synth.preview import make_preview

            make_preview(tmp, progress=progress)
        if root.exists():
            foreign = foreign_files(root)
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            os.rename(root, old)
            os.rename(tmp, root)
            if foreign == []:            # only what the generator wrote: nothing of the user's is lost
                shutil.rmtree(old, ignore_errors=True)
            else:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                kept = next(c for c in (root.parent / (f"{root.name}.previous-{stamp}" + (f"-{k}" if k else ""))
                                        for k in range(1000)) if not c.exists())
                os.rename(old, kept)
                why = ("it has no list of the generated files to tell them from yours" if foreign is None else
                       f"it holds {len(foreign)} file(s) the generator did not write, e.g. {foreign[0]}")
                print(f"[corrtrack] the previous world at {root} is kept as {kept} ({why}); delete it when you "
                      f"no longer need it", file=sys.stderr, flush=True)
        else:
            os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _write_manifest(root: Path) -> None:
    lines = [f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}" for p in sorted(root.rglob("*"))
             if p.is_file() and p.name not in (MANIFEST, MARKER)]
    (root / MANIFEST).write_text("\n".join(lines) + "\n")


def foreign_files(root: str | Path) -> list[str] | None:
    """Files in the world folder ``root`` that the generator did not write (relative paths; a generated
    file whose size changed counts as the user's too). None: the world has no ``files.tsv`` (written by an
    older version), so generated and other files cannot be told apart."""
    root = Path(root)
    try:
        listed = dict(ln.split("\t", 1) for ln in (root / MANIFEST).read_text().splitlines() if "\t" in ln)
    except OSError:
        return None
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name in (MANIFEST, MARKER):
            continue
        rel = p.relative_to(root).as_posix()
        if rel.split("/", 1)[0] in OWN_DIRS:
            continue
        if listed.get(rel) != str(p.stat().st_size):
            out.append(rel)
    return out


def _check_replaceable(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder; cannot write a synthetic world there")
    if root.is_dir() and any(root.iterdir()) and _marker(root) is None:
        raise FileExistsError(
            f"{root} is not empty and holds no complete synthetic world (no valid {MARKER}); it may be a "
            f"half-written world or unrelated files. Delete it or choose another folder."
        )


def generate_world(
    out: str | Path,
    preset: str = "small",
    seed: int = 0,
    preview: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Generate the synthetic world ``preset`` with ``seed`` into ``out`` (replacing a world already there).

    Layout under ``out``: ``coco/images/{train2017,val2017}/*.jpg``,
    ``coco/annotations/person_keypoints_{train2017,val2017}.json``,
    ``posetrack/images/{train,val}/<seq>/NNNNNN.jpg``, ``posetrack/annotations/{train,val}/<seq>.json``,
    ``posetrack/detections/val/<seq>.json`` (simulated), ``posetrack/visibility/{train,val}/<seq>.json``
    (sidecar), ``preview/`` (when ``preview``), and the marker ``world.json``.

    Args:
        workers: processes to render with (default: 1 for ``tiny``, else up to 4, or the environment
            variable ``CORRTRACK_SYNTH_WORKERS``); the output does not depend on it.
    Raises:
        FileExistsError: ``out`` holds files that are not a synthetic world.
    """
    root = Path(out).absolute()
    p = get_preset(preset)
    with _lock(root):
        _check_replaceable(root)
        return _generate_into(root, p, seed, progress, workers, preview)


def ensure_world(root: str | Path, preset: str, seed: int = 0, progress: bool = True) -> Path:
    """Return ``root`` holding a complete world of ``preset`` / ``seed``, generating it if needed.

    Generation is atomic (temporary sibling folder, renamed when complete, marker ``world.json`` last)
    and locked, so concurrent callers generate it once. A world from an older generator version, or one
    generated from an earlier definition of the preset (its ``preset_config`` differs), is regenerated.

    Raises:
        FileExistsError: ``root`` holds a world of another preset or seed, or unrelated files.
    """
    root = Path(root).absolute()
    p = get_preset(preset)
    with _lock(root):
        m = _marker(root)
        if m is not None:
            if m.get("preset") != p.name or int(m.get("seed", -1)) != int(seed):
                raise FileExistsError(
                    f"{root} holds the synthetic world preset={m.get('preset')!r} seed={m.get('seed')}, not "
                    f"preset={p.name!r} seed={seed}; point the root elsewhere "
                    f"(e.g. <root>/{p.name}-seed{seed}) "
                    f"or delete it"
                )
            why = stale_reasons(m, p)
            if not why:
                return root
            if progress:
                print(f"[corrtrack] regenerating the synthetic world at {root} ({'; '.join(why)})", flush=True)
        _check_replaceable(root)
        return _generate_into(root, p, seed, progress, None, preview=False)


def preset_changes(marker: dict, preset: Preset) -> list[str]:
    """Fields of ``preset`` whose value differs from the one the world in ``marker`` was generated with."""
    now = json.loads(json.dumps(preset.to_dict()))
    then = marker.get("preset_config") or {}
    return [k for k in now if then.get(k) != now[k]]


def stale_reasons(marker: dict, preset: Preset) -> list[str]:
    """Why the world in ``marker`` (of ``preset``) must be regenerated: an older generator version or an
    earlier definition of the preset; empty when it is current."""
    why = [] if marker.get("version") == VERSION else [f"generator version {marker.get('version')} -> {VERSION}"]
    changed = preset_changes(marker, preset)
    return why + (["preset changed: " + ", ".join(changed)] if changed else [])


def read_marker(root: str | Path) -> dict | None:
    """The parsed ``world.json`` of a complete world at ``root``, else None."""
    return _marker(Path(root))
