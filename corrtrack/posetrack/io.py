"""Read and write PoseTrack 2017 (``annolist``) and 2018 (COCO-like) files, one JSON per video.

Both formats load into the same :class:`~corrtrack.posetrack.types.Sequence` (keypoints in 2018 slot
order); PoseTrack21 files (2018 plus ``person_id``) are read by ``posetrack21.py`` through the same 2018
reader; 2017 joint ids are the 15 evaluation ids (``keypoints.EVAL_TO_POSETRACK`` maps them to slots).
Anything malformed raises :class:`PoseTrackFormatError` naming the file, the field and the frame (frame
numbers are 0-based positions in the file's ``images`` / ``annolist`` list).
"""
from __future__ import annotations

import contextlib
import gc
import glob
import json
import logging
import math
import os
from typing import Any

import numpy as np

from corrtrack.keypoints import (EVAL_TO_POSETRACK, NUM_EVAL_JOINTS, NUM_JOINTS, POSETRACK_NAMES,
                                 posetrack_skeleton_1based)
from corrtrack.posetrack.types import Frame, Person, PoseTrackFormatError, Sequence

log = logging.getLogger(__name__)

# poseval's fallback for a predicted joint without a score; the 2018 writer stores it for such joints.
MISSING_SCORE = -9999.0
_NUMBER = _NUMT = (int, float)
_E2P = [int(s) for s in EVAL_TO_POSETRACK]


# ----------------------------------------------------------------------------------------------- reading

@contextlib.contextmanager
def no_gc():
    """Pause Python's cyclic garbage collector: parsing a PoseTrack file creates millions of small lists and
    dicts, and the collector's repeated full scans would otherwise take over half of the load time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_json(path: str) -> Any:
    """Parse a JSON file; empty, truncated or non-JSON files raise PoseTrackFormatError."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise PoseTrackFormatError(f"cannot read file ({e.strerror or e})", path) from None
    if not raw.strip():
        raise PoseTrackFormatError("empty file; expected a PoseTrack 2017 or 2018 JSON object", path)
    try:
        with no_gc():
            return json.loads(raw)
    except UnicodeDecodeError as e:
        raise PoseTrackFormatError(f"not UTF-8 text ({e.reason} at byte {e.start})", path) from None
    except json.JSONDecodeError as e:
        truncated = e.pos >= len(raw.rstrip()) - 1 or e.msg.startswith("Unterminated string")
        what = "truncated JSON" if truncated else "invalid JSON"
        raise PoseTrackFormatError(f"{what}: {e.msg} at line {e.lineno} column {e.colno}", path) from None
    except RecursionError:
        raise PoseTrackFormatError("invalid JSON: nested too deeply", path) from None


def detect_format(data: Any) -> str | None:
    """"2021" (PoseTrack21: ``images`` with ``has_labeled_person`` or ``person_id``), "2018" (has ``images``),
    "2017" (has ``annolist``) or None."""
    if isinstance(data, dict):
        if "images" in data:
            from corrtrack.posetrack.posetrack21 import is_posetrack21
            return "2021" if is_posetrack21(data) else "2018"
        if "annolist" in data:
            return "2017"
    return None


def load_sequence(path: str, name: str | None = None) -> Sequence:
    """Load one video file, 2017, 2018 or PoseTrack21 format (autodetected). ``name`` defaults to the file stem."""
    path = os.fspath(path)
    data = read_json(path)
    with no_gc():
        return parse_sequence(data, path=path, name=name)


def parse_sequence(data: Any, path: str | None = None, name: str | None = None) -> Sequence:
    """Build a Sequence from already-parsed JSON (format autodetected)."""
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0] if path else "sequence"
    if not isinstance(data, dict):
        raise PoseTrackFormatError(f"top level is a JSON {_json_type(data)}, expected an object with "
                                   "'images' (PoseTrack 2018) or 'annolist' (PoseTrack 2017)", path)
    fmt = detect_format(data)
    if fmt == "2021":
        from corrtrack.posetrack.posetrack21 import parse_posetrack21
        return parse_posetrack21(data, path, name)
    if fmt == "2018":
        return _parse_2018(data, path, name)
    if fmt == "2017":
        return _parse_2017(data, path, name)
    keys = ", ".join(repr(k) for k in list(data)[:6]) or "none"
    raise PoseTrackFormatError(f"missing field 'images' (PoseTrack 2018) or 'annolist' (PoseTrack 2017); "
                               f"top-level keys: {keys}", path)


def list_json_files(folder: str, sort: bool = False) -> list[str]:
    """The ``*.json`` files of a folder. Default order is the directory listing order, which is the order
    poseval reads them in (it matters only for ties in joint scores across sequences)."""
    pattern = os.path.join(glob.escape(os.fspath(folder)), "*.json")
    files = [f for f in glob.glob(pattern) if os.path.isfile(f)]
    return sorted(files) if sort else files


def load_folder(folder: str, sort: bool = False) -> dict[str, Sequence]:
    """Load every ``*.json`` of a folder: {file stem: Sequence}, in listing order (or sorted)."""
    if not os.path.isdir(folder):
        raise PoseTrackFormatError("not a folder", os.fspath(folder))
    out: dict[str, Sequence] = {}
    for path in list_json_files(folder, sort=sort):
        seq = load_sequence(path)
        out[seq.name] = seq
    return out


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(v), type(v).__name__)


def _is_num(v: Any) -> bool:
    return isinstance(v, _NUMBER) and not isinstance(v, bool)


def _num(v: Any, path, field, frame) -> float:
    if isinstance(v, list) and len(v) == 1:       # 2017 style [value]
        v = v[0]
    if not _is_num(v):
        raise PoseTrackFormatError(f"expected a number, got {_json_type(v)} {_short(v)}", path, field, frame)
    return float(v)


def _int(v: Any, path, field, frame) -> int:
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        raise PoseTrackFormatError(f"expected an integer, got {_json_type(v)} {_short(v)}", path, field,
                                   frame)
    return v


def _short(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, float) else repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _numbers(v: Any, n: int | None, path, field, frame) -> np.ndarray:
    """A flat list of n numbers as float64 (NaN allowed, null and strings are not)."""
    if not isinstance(v, list):
        raise PoseTrackFormatError(f"expected a list of numbers, got {_json_type(v)} {_short(v)}",
                                   path, field, frame)
    if n is not None and len(v) != n:
        raise PoseTrackFormatError(f"has {len(v)} values, expected {n}", path, field, frame)
    for k, x in enumerate(v):
        if not _is_num(x):
            raise PoseTrackFormatError(f"value {k} is {_json_type(x)} {_short(x)}, expected a number",
                                       path, field, frame)
    return np.asarray(v, dtype=np.float64)


def _box_or_none(v: Any, path, field, frame) -> np.ndarray | None:
    if v is None or (isinstance(v, list) and len(v) == 0):
        return None
    return _numbers(v, 4, path, field, frame)


def _new_person(keypoints, present, track_id, scores, bbox, head_box, has_points=True, score=None,
                ann_id=None) -> Person:
    # Fast construction for the loaders: the arrays are already validated and shaped.
    p = Person.__new__(Person)
    p.keypoints, p.present, p.track_id, p.scores = keypoints, present, track_id, scores
    p.bbox, p.head_box, p.has_points, p.score, p.ann_id = bbox, head_box, has_points, score, ann_id
    return p


def _category_slots(data: dict, path) -> np.ndarray | None:
    """Map a file's keypoint order to 2018 slots when its ``categories`` name them differently."""
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats or not isinstance(cats[0], dict):
        return None
    names = cats[0].get("keypoints")
    if not isinstance(names, list) or not names or list(names) == list(POSETRACK_NAMES):
        return None                              # no names (poseval reads none): 2018 slot order
    alias = {"neck": "head_bottom", "head": "head_top"}
    slots = []
    for n in names:
        n = alias.get(n, n) if isinstance(n, str) else n
        slots.append(POSETRACK_NAMES.index(n) if n in POSETRACK_NAMES else -1)
    if not any(s >= 0 for s in slots):
        raise PoseTrackFormatError(f"none of the keypoint names {names[:4]}... is a PoseTrack joint", path,
                                   "categories[0].keypoints")
    return np.asarray(slots, dtype=np.int64)


def _regions_2018(im: dict, path, frame: int) -> list[np.ndarray]:
    rx, ry = im.get("ignore_regions_x"), im.get("ignore_regions_y")
    if rx is None and ry is None:
        return []
    rx, ry = rx or [], ry or []
    if not isinstance(rx, list) or not isinstance(ry, list):
        raise PoseTrackFormatError("expected lists of polygons", path, "ignore_regions_x/ignore_regions_y",
                                   frame)
    if len(rx) != len(ry):
        raise PoseTrackFormatError(f"{len(rx)} x polygons but {len(ry)} y polygons", path,
                                   "ignore_regions_x/ignore_regions_y", frame)
    out = []
    for k, (px, py) in enumerate(zip(rx, ry)):
        xs = _numbers(px, None, path, f"ignore_regions_x[{k}]", frame)
        ys = _numbers(py, len(xs), path, f"ignore_regions_y[{k}]", frame)
        out.append(np.stack([xs, ys], axis=1) if len(xs) else np.zeros((0, 2)))
    return out


def _parse_2018(data: dict, path, name: str) -> Sequence:
    images = data.get("images")
    if not isinstance(images, list):
        raise PoseTrackFormatError(f"expected a list of images, got {_json_type(images)}", path, "images")
    anns = data.get("annotations")
    if anns is None:
        anns = []
    if not isinstance(anns, list):
        raise PoseTrackFormatError(f"expected a list, got {_json_type(anns)}", path, "annotations")
    slot_map = _category_slots(data, path)
    n_file = NUM_JOINTS if slot_map is None else len(slot_map)
    frames, index, vid_id = _frames_2018(images, bool(anns), path)
    # Pass 1: validate and collect (a batch fast path for well-formed files, else annotation by annotation);
    # pass 2: one batched float conversion for all keypoints.
    columns = _anns_fast_2018(anns, index, n_file)
    if columns is None:
        columns = _anns_checked_2018(anns, index, n_file, path)
    if columns[2]:
        _add_persons_2018(frames, columns, n_file, slot_map, path)
    return Sequence(name=name, frames=frames, format="2018", path=path, vid_id=vid_id,
                    categories=bool(data.get("categories")))


def _frames_2018(images: list, have_anns: bool, path) -> tuple[list[Frame], dict, Any]:
    """The frames of a 2018 ``images`` list (without persons), {image id: frame number} and the video id."""
    frames: list[Frame] = []
    index: dict = {}
    vid_id = None
    for i, im in enumerate(images):
        if not isinstance(im, dict):
            raise PoseTrackFormatError(f"expected an object, got {_json_type(im)}", path, f"images[{i}]", i)
        iid = im.get("id", im.get("image_id"))
        if iid is None:
            if have_anns:
                raise PoseTrackFormatError("missing field 'id' (annotations refer to images by id)", path,
                                           f"images[{i}].id", i)
            iid = i
        if isinstance(iid, (list, dict)) or isinstance(iid, bool):
            raise PoseTrackFormatError(f"expected an integer or string id, got {_json_type(iid)}", path,
                                       f"images[{i}].id", i)
        if iid in index:
            raise PoseTrackFormatError(f"duplicate image id {iid!r} (also frame {index[iid]})", path,
                                       f"images[{i}].id", i)
        index[iid] = i
        fn = im.get("file_name", "")
        if not isinstance(fn, str):
            raise PoseTrackFormatError(f"expected a string, got {_json_type(fn)}", path,
                                       f"images[{i}].file_name", i)
        lab = im.get("is_labeled")
        if isinstance(lab, list):
            lab = lab[0] if lab else None
        vid_id = im.get("vid_id", vid_id)
        w, h = im.get("width"), im.get("height")
        frames.append(Frame(file_name=fn, image_id=iid, persons=[],
                            is_labeled=None if lab is None else bool(lab),
                            ignore_regions=_regions_2018(im, path, i),
                            width=int(w) if _is_num(w) else None, height=int(h) if _is_num(h) else None))
    return frames, index, vid_id


def _anns_checked_2018(anns: list, index: dict, n_file: int, path) -> tuple[list, ...]:
    """The columns of :func:`_anns_fast_2018`, annotation by annotation, naming the first malformed field;
    annotations of an unknown image id are skipped with one warning."""
    columns: tuple[list, ...] = ([], [], [], [], [], [], [], [], [])
    unknown = 0
    for k, ann in enumerate(anns):
        fld = f"annotations[{k}]"
        if not isinstance(ann, dict):
            raise PoseTrackFormatError(f"expected an object, got {_json_type(ann)}", path, fld)
        iid = ann.get("image_id")
        if iid is None:
            raise PoseTrackFormatError("missing field 'image_id'", path, fld + ".image_id")
        fi = index.get(iid) if not isinstance(iid, (list, dict)) else None
        if fi is None:
            unknown += 1
            continue
        for column, value in zip(columns, (fi, k, *_ann_fields_2018(ann, fld, fi, n_file, path))):
            column.append(value)
    if unknown:
        log.warning("%s: %d annotation(s) refer to an image id that is not in 'images'; ignored", path,
                    unknown)
    return columns


def _ann_fields_2018(ann: dict, fld: str, fi: int, n_file: int, path) -> tuple:
    """(keypoints, track id, joint scores, bbox, head box, person score, annotation id) of one checked
    annotation of frame ``fi``; the keypoints and scores stay lists (converted in one batch later)."""
    kp = ann.get("keypoints")
    if kp is None:
        raise PoseTrackFormatError("missing field 'keypoints'", path, fld + ".keypoints", fi)
    if not isinstance(kp, list):
        raise PoseTrackFormatError(f"expected a list of {3 * n_file} numbers, got {_json_type(kp)}",
                                   path, fld + ".keypoints", fi)
    if len(kp) != 3 * n_file:
        raise PoseTrackFormatError(f"has {len(kp)} values, expected {3 * n_file} ({n_file} joints x 3)",
                                   path, fld + ".keypoints", fi)
    tid = ann.get("track_id")
    if tid is not None:
        tid = _int(tid, path, fld + ".track_id", fi)
    sc = ann.get("scores")
    if sc is not None and not (isinstance(sc, list) and len(sc) == 0):
        if not isinstance(sc, list) or len(sc) != n_file:
            what = f"has {len(sc)} values" if isinstance(sc, list) else f"is a {_json_type(sc)}"
            raise PoseTrackFormatError(f"{what}, expected {n_file} joint scores", path, fld + ".scores", fi)
    else:
        sc = None
    ps = ann.get("score")
    if ps is not None:
        ps = _num(ps, path, fld + ".score", fi)
    bbox = _box_or_none(ann.get("bbox"), path, fld + ".bbox", fi)
    head = _box_or_none(ann.get("bbox_head"), path, fld + ".bbox_head", fi)
    aid = ann.get("id")
    aid = aid if isinstance(aid, (int, str)) and not isinstance(aid, bool) else None
    return kp, tid, sc, bbox, head, ps, aid


def _add_persons_2018(frames: list[Frame], columns: tuple[list, ...], n_file: int,
                      slot_map: np.ndarray | None, path) -> None:
    """Convert the collected keypoints and scores in one batch each (in 2018 slot order) and append the
    persons to their frames."""
    owners, idx, kps, tids, scores, bboxes, heads, pscores, aids = columns
    arr = _batch_numbers(kps, 3 * n_file, path, "keypoints", owners, idx).reshape(-1, n_file, 3)
    with_scores = [i for i, s in enumerate(scores) if s is not None]
    sarr = None
    if with_scores:
        sarr = _batch_numbers([scores[i] for i in with_scores], n_file, path, "scores",
                              [owners[i] for i in with_scores], [idx[i] for i in with_scores])
    if slot_map is not None:                    # reorder into 2018 slots
        full = np.zeros((len(arr), NUM_JOINTS, 3))
        ok = slot_map >= 0
        full[:, slot_map[ok]] = arr[:, ok]
        arr = full
        if sarr is not None:
            sfull = np.zeros((len(sarr), NUM_JOINTS))
            sfull[:, slot_map[ok]] = sarr[:, ok]
            sarr = sfull
    present = ~((arr[:, :, 0] == 0) & (arr[:, :, 1] == 0) & (arr[:, :, 2] == 0))
    srow = {i: r for r, i in enumerate(with_scores)}
    for k, fi in enumerate(owners):
        r = srow.get(k)
        frames[fi].persons.append(_new_person(arr[k], present[k], tids[k], None if r is None else sarr[r],
                                              bboxes[k], heads[k], True, pscores[k], aids[k]))


def _float_array(rows) -> np.ndarray | None:
    """rows as float64 if they hold only numbers (NaN allowed); None for strings, null, ragged rows.

    ``np.array(..., dtype=float)`` would silently accept numeric strings ("7") and turn null into NaN."""
    try:
        arr = np.array(rows)
    except (ValueError, TypeError):
        return None
    if arr.dtype.kind not in "biuf":
        return None
    return arr.astype(np.float64, copy=False)


def _boxes_fast(boxes: list) -> list | None:
    """[x, y, w, h] arrays (None for absent / empty boxes), or None when a box is malformed."""
    have = [k for k, b in enumerate(boxes) if b]
    out: list = [None] * len(boxes)
    if not have:
        return out
    rows = [boxes[k] for k in have]
    if not all(type(b) is list and len(b) == 4 for b in rows):
        return None
    arr = _float_array(rows)
    if arr is None:
        return None
    for r, k in enumerate(have):
        out[k] = arr[r]
    return out


def _anns_fast_2018(anns: list, index: dict, n_file: int):
    """The collected annotation fields of a well-formed file in one pass, or None (then the validating
    loop reads the file and names any problem)."""
    try:
        fis = [index[a["image_id"]] for a in anns]
        kps = [a["keypoints"] for a in anns]
        tids = [a.get("track_id") for a in anns]
        scs = [a.get("scores") for a in anns]
        heads = [a.get("bbox_head") for a in anns]
        boxes = [a.get("bbox") for a in anns]
        pss = [a.get("score") for a in anns]
        aids = [a.get("id") for a in anns]
    except (KeyError, TypeError, AttributeError):
        return None
    n = 3 * n_file
    if not all(type(k) is list and len(k) == n for k in kps):
        return None
    if not all(t is None or type(t) is int for t in tids):
        return None
    if not all(p is None or type(p) in _NUMT for p in pss):
        return None
    scores = []
    for sc in scs:
        if sc is None or (type(sc) is list and not sc):
            scores.append(None)
        elif type(sc) is list and len(sc) == n_file:
            scores.append(sc)
        else:
            return None
    heads, boxes = _boxes_fast(heads), _boxes_fast(boxes)
    if heads is None or boxes is None:
        return None
    pss = [None if p is None else float(p) for p in pss]
    aids = [a if type(a) in (int, str) else None for a in aids]
    return fis, list(range(len(anns))), kps, tids, scores, boxes, heads, pss, aids


def _batch_numbers(rows: list, n: int, path, field: str, owners: list[int], ann_idx: list[int]) -> np.ndarray:
    """Convert equal-length rows to a float64 array; locate the offending value on failure."""
    arr = _float_array(rows)
    if arr is None or arr.ndim != 2 or arr.shape[1] != n:
        arr, check = None, range(len(rows))
    else:
        check = np.nonzero(np.isnan(arr).any(1))[0]
    # np.array turns null into NaN silently: rows holding NaN are checked value by value.
    for k in check:
        for j, x in enumerate(rows[k]):
            if not _is_num(x):
                raise PoseTrackFormatError(f"value {j} is {_json_type(x)} {_short(x)}, expected a number",
                                           path, f"annotations[{ann_idx[k]}].{field}", owners[k])
    if arr is None or arr.ndim != 2:
        raise PoseTrackFormatError("could not be read as numbers", path, f"annotations[].{field}")
    return arr


def _parse_2017(data: dict, path, name: str) -> Sequence:
    annolist = data.get("annolist")
    if not isinstance(annolist, list):
        raise PoseTrackFormatError(f"expected a list of frames, got {_json_type(annolist)}", path, "annolist")
    frames, all_rects = [], []
    for i, entry in enumerate(annolist):
        fld = f"annolist[{i}]"
        if not isinstance(entry, dict):
            raise PoseTrackFormatError(f"expected an object, got {_json_type(entry)}", path, fld, i)
        image = entry.get("image")
        fn = ""
        if isinstance(image, list) and image:
            image = image[0]
        if isinstance(image, dict):
            fn = image.get("name", "")
        elif isinstance(image, str):
            fn = image
        if not isinstance(fn, str):
            raise PoseTrackFormatError(f"expected a string, got {_json_type(fn)}", path, fld + ".image.name",
                                       i)
        rects = entry.get("annorect")
        if rects is None:
            rects = []
        if isinstance(rects, dict):
            rects = [rects]
        if not isinstance(rects, list):
            raise PoseTrackFormatError(f"expected a list of persons, got {_json_type(rects)}", path,
                                       fld + ".annorect", i)
        all_rects.append(rects)
        regions = []
        irs = entry.get("ignore_regions") or []
        if isinstance(irs, dict):
            irs = [irs]
        if not isinstance(irs, list):
            raise PoseTrackFormatError(f"expected a list, got {_json_type(irs)}", path,
                                       fld + ".ignore_regions", i)
        for k, reg in enumerate(irs):
            pts = reg.get("point") if isinstance(reg, dict) else None
            if pts is None:
                pts = []
            if not isinstance(pts, list):
                raise PoseTrackFormatError(f"expected a list of points, got {_json_type(pts)}", path,
                                           f"{fld}.ignore_regions[{k}].point", i)
            pf = f"{fld}.ignore_regions[{k}].point"
            poly = [(_num(p.get("x") if isinstance(p, dict) else None, path, f"{pf}[{m}].x", i),
                     _num(p.get("y") if isinstance(p, dict) else None, path, f"{pf}[{m}].y", i))
                    for m, p in enumerate(pts)]
            regions.append(np.asarray(poly, dtype=np.float64).reshape(-1, 2))
        lab = entry.get("is_labeled")
        if isinstance(lab, list):
            lab = lab[0] if lab else None
        frames.append(Frame(file_name=fn, image_id=entry.get("image_id", i), persons=[],
                            is_labeled=None if lab is None else bool(lab), ignore_regions=regions))
    persons = _rects_fast_2017([r for rects in all_rects for r in rects])
    if persons is None:                          # something unusual: the validating path names it
        persons = [_parse_rect_2017(r, path, f"annolist[{i}].annorect[{k}]", i)
                   for i, rects in enumerate(all_rects) for k, r in enumerate(rects)]
    it = iter(persons)
    for fr, rects in zip(frames, all_rects):
        fr.persons = [next(it) for _ in rects]
    return Sequence(name=name, frames=frames, format="2017", path=path)


_ONE, _NAN1, _NAN4 = [1], [math.nan], (math.nan,) * 4


def _scalar1(v):
    """The number in a 2017 one-element list, None if absent; raises TypeError if unusual."""
    if v is None:
        return None
    if type(v) is list and len(v) == 1 and type(v[0]) in _NUMT:
        return v[0]
    raise TypeError


def _rect_fast_2017(r: dict) -> tuple:
    """(track id, head corners or None, score, point list or None) of one usual ``annorect``; raises
    TypeError (or the KeyError / IndexError / AttributeError of a lookup) when it is unusual."""
    tid = r.get("track_id")
    if tid is not None:
        if type(tid) is list and len(tid) == 1 and type(tid[0]) is int:
            tid = tid[0]
        else:
            raise TypeError
    x1 = r.get("x1")
    if x1 is None:
        if r.get("y1") is not None or r.get("x2") is not None or r.get("y2") is not None:
            raise TypeError
        head = None
    else:                                        # [x1], [y1], [x2], [y2]: checked in one batch later
        head = (x1[0], r["y1"][0], r["x2"][0], r["y2"][0])
    score = r.get("score")
    if score is not None:
        score = _scalar1(score)
    ap = r.get("annopoints")
    pts = None
    if type(ap) is list and ap and type(ap[0]) is dict and "point" in ap[0]:
        pts = ap[0]["point"] or []
        if type(pts) is not list:
            raise TypeError
    elif not (ap is None or (type(ap) is list and (not ap or type(ap[0]) is dict))):
        raise TypeError
    return tid, head, score, pts


def _rects_fast_2017(rects: list):
    """Persons of all ``annorect`` entries of a file in one batch, or None when any entry is unusual."""
    n = len(rects)
    try:
        fields = [_rect_fast_2017(r) for r in rects]
        point_lists = [f[3] for f in fields]
        flat = [p for pts in point_lists if pts for p in pts]
        ids = [p["id"][0] for p in flat]
        xs = [p["x"][0] for p in flat]
        ys = [p["y"][0] for p in flat]
        vis = [(p.get("is_visible") or _ONE)[0] for p in flat]
        scs = [(p.get("score") or _NAN1)[0] for p in flat]
    except (AttributeError, KeyError, TypeError, IndexError):
        return None
    try:
        ids_a = np.array(ids) if ids else np.zeros(0, np.int64)
    except (ValueError, TypeError):
        return None
    if ids_a.dtype.kind != "i" or ids_a.ndim != 1:   # null, float, string or list ids: the validating path
        return None
    heads = None
    if any(f[1] is not None for f in fields):
        heads = _float_array([f[1] if f[1] is not None else _NAN4 for f in fields])
        if heads is None or heads.shape != (n, 4):
            return None
        heads[:, 2:] -= heads[:, :2]             # x1, y1, x2, y2 -> x, y, w, h
    vals = _float_array([xs, ys, vis])
    sc_a = _float_array(scs)
    if vals is None or sc_a is None:
        return None
    kp, present, scores, has_score = _scatter_points_2017(point_lists, ids_a, vals.reshape(3, -1), sc_a)
    out = []
    for k, (tid, head, score, pts) in enumerate(fields):
        out.append(_new_person(kp[k], present[k], tid, scores[k] if has_score[k] else None, None,
                               None if head is None else heads[k],
                               pts is not None, None if score is None else float(score)))
    return out


def _scatter_points_2017(point_lists: list, ids: np.ndarray, vals: np.ndarray, point_scores: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The points of all persons (``ids`` (M,) 2017 joint ids, ``vals`` (3, M) x, y, visibility,
    ``point_scores`` (M,), NaN for none; person k owns the next ``len(point_lists[k])`` points) as (N, 17, 3)
    keypoints, (N, 17) present, (N, 17) scores and (N,) has-a-score, in 2018 slots. Ids outside the 15
    evaluation joints are skipped; of a repeated joint id the first point counts."""
    n = len(point_lists)
    counts = np.array([len(p) if p else 0 for p in point_lists], dtype=np.int64)
    owner = np.repeat(np.arange(n), counts)
    ok = (ids >= 0) & (ids < NUM_EVAL_JOINTS)
    idx = np.nonzero(ok)[0]
    slot = EVAL_TO_POSETRACK[ids[idx]]
    key = owner[idx] * NUM_JOINTS + slot
    _, first = np.unique(key, return_index=True)        # a repeated joint id: the first point counts
    idx, slot = idx[first], slot[first]
    who = owner[idx]
    kp = np.zeros((n, NUM_JOINTS, 3))
    kp[who, slot] = vals[:, idx].T
    present = np.zeros((n, NUM_JOINTS), dtype=bool)
    present[who, slot] = True
    scores = np.full((n, NUM_JOINTS), np.nan)
    scores[who, slot] = point_scores[idx]
    has_score = np.zeros(n, dtype=bool)
    has_score[who[~np.isnan(point_scores[idx])]] = True
    return kp, present, scores, has_score


def _points_fast(points: list):
    """The common case of a 2017 point list, without per-value helper calls; None if anything is unusual
    (the validating path then reads the list and names the problem)."""
    kp = [0.0] * (3 * NUM_JOINTS)
    present = [False] * NUM_JOINTS
    scores = [math.nan] * NUM_JOINTS
    any_score = False
    for pt in points:
        try:
            jid, x, y = pt["id"][0], pt["x"][0], pt["y"][0]
        except (KeyError, TypeError, IndexError):
            return None
        if type(jid) is not int or type(x) not in _NUMT or type(y) not in _NUMT:
            return None
        if not 0 <= jid < NUM_EVAL_JOINTS:
            continue
        s = _E2P[jid]
        if present[s]:
            continue
        vis = pt.get("is_visible")
        if vis is None:
            vis = 1
        elif type(vis) is list and len(vis) == 1 and type(vis[0]) in _NUMT:
            vis = vis[0]
        else:
            return None
        sc = pt.get("score")
        if sc is not None:
            if type(sc) is list and len(sc) == 1 and type(sc[0]) in _NUMT:
                scores[s] = sc[0]
                any_score = True
            else:
                return None
        present[s] = True
        kp[3 * s], kp[3 * s + 1], kp[3 * s + 2] = x, y, vis
    return (np.array(kp, dtype=np.float64).reshape(NUM_JOINTS, 3), np.array(present),
            np.array(scores, dtype=np.float64) if any_score else None)


def _parse_rect_2017(rect: Any, path, fld: str, frame: int) -> Person:
    if not isinstance(rect, dict):
        raise PoseTrackFormatError(f"expected an object, got {_json_type(rect)}", path, fld, frame)
    tid = rect.get("track_id")
    if tid is not None:
        tid = _int(tid, path, fld + ".track_id", frame)
    corners = [rect.get(k) for k in ("x1", "y1", "x2", "y2")]
    head = None
    if any(c is not None for c in corners):
        if any(c is None for c in corners):
            raise PoseTrackFormatError("head box needs all of x1, y1, x2, y2", path, fld + ".x1/y1/x2/y2",
                                       frame)
        x1, y1, x2, y2 = (_num(c, path, f"{fld}.{k}", frame)
                          for c, k in zip(corners, ("x1", "y1", "x2", "y2")))
        head = np.array([x1, y1, x2 - x1, y2 - y1])
    score = rect.get("score")
    if score is not None:
        score = _num(score, path, fld + ".score", frame)
    kp = np.zeros((NUM_JOINTS, 3))
    present = np.zeros(NUM_JOINTS, dtype=bool)
    scores = np.full(NUM_JOINTS, np.nan)
    ap = rect.get("annopoints")
    if isinstance(ap, dict):
        ap = [ap]
    # poseval keeps a person only if annopoints[0] is a non-empty object with a 'point' key.
    if not isinstance(ap, list) or not ap or not isinstance(ap[0], dict) or "point" not in ap[0]:
        if ap is not None and not isinstance(ap, list):
            raise PoseTrackFormatError(f"expected a list, got {_json_type(ap)}", path, fld + ".annopoints",
                                       frame)
        return _new_person(kp, present, tid, None, None, head, False, score)
    points = ap[0]["point"] or []
    if not isinstance(points, list):
        raise PoseTrackFormatError(f"expected a list of points, got {_json_type(points)}", path,
                                   fld + ".annopoints[0].point", frame)
    fast = _points_fast(points)
    if fast is not None:
        kp, present, scores = fast
        return _new_person(kp, present, tid, scores, None, head, True, score)
    any_score = False
    for m, pt in enumerate(points):
        pf = f"{fld}.annopoints[0].point[{m}]"
        if not isinstance(pt, dict):
            raise PoseTrackFormatError(f"expected an object, got {_json_type(pt)}", path, pf, frame)
        if "id" not in pt:
            raise PoseTrackFormatError("missing field 'id'", path, pf + ".id", frame)
        jid = pt["id"]
        if jid is None or jid == [None]:
            continue                             # poseval skips points whose id is null
        jid = _int(jid, path, pf + ".id", frame)
        if not 0 <= jid < NUM_EVAL_JOINTS:
            continue                             # not an evaluation joint: never looked up
        slot = EVAL_TO_POSETRACK[jid]
        if present[slot]:
            continue                             # a repeated id: the first point counts (as in poseval)
        for key in ("x", "y"):
            if key not in pt:
                raise PoseTrackFormatError(f"missing field '{key}'", path, f"{pf}.{key}", frame)
        kp[slot, 0] = _num(pt["x"], path, pf + ".x", frame)
        kp[slot, 1] = _num(pt["y"], path, pf + ".y", frame)
        vis = pt.get("is_visible")
        kp[slot, 2] = 1.0 if vis is None or vis == [] else _num(vis, path, pf + ".is_visible", frame)
        s = pt.get("score")
        if s is not None and s != []:
            scores[slot] = _num(s, path, pf + ".score", frame)
            any_score = True
        present[slot] = True
    return _new_person(kp, present, tid, scores if any_score else None, None, head, True, score)


# ----------------------------------------------------------------------------------------------- writing

def _clean(v: float) -> float | int:
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v


def _head_corners(head: np.ndarray) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in head)
    return x, y, x + w, y + h


def to_2018_dict(seq: Sequence) -> dict:
    """The PoseTrack 2018 JSON object of a sequence (the official release's fields)."""
    images, annotations = [], []
    n = len(seq.frames)
    ann_id = 0
    for i, fr in enumerate(seq.frames):
        iid = fr.image_id if fr.image_id is not None else i
        lab = fr.is_labeled if fr.is_labeled is not None else bool(fr.persons)
        images.append({
            "file_name": fr.file_name, "id": iid,
            "vid_id": seq.vid_id if seq.vid_id is not None else seq.name,
            "frame_id": iid, "nframes": n, "is_labeled": bool(lab),
            "ignore_regions_x": [[_clean(v) for v in poly[:, 0]] for poly in fr.ignore_regions],
            "ignore_regions_y": [[_clean(v) for v in poly[:, 1]] for poly in fr.ignore_regions],
        })
        for p in fr.persons:
            kp = np.where(p.present[:, None], p.keypoints, 0.0)
            ann = {"image_id": iid, "category_id": 1, "id": ann_id,
                   "keypoints": [_clean(v) for v in kp.reshape(-1)]}
            ann_id += 1
            if p.track_id is not None:
                ann["track_id"] = int(p.track_id)
            if p.scores is not None:
                s = np.where(np.isnan(p.scores), np.where(p.present, MISSING_SCORE, 0.0), p.scores)
                ann["scores"] = [float(v) for v in s]
            if p.score is not None:
                ann["score"] = float(p.score)
            if p.bbox is not None:
                ann["bbox"] = [_clean(v) for v in p.bbox]
            if p.head_box is not None:
                ann["bbox_head"] = [_clean(v) for v in p.head_box]
            annotations.append(ann)
    categories = [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(POSETRACK_NAMES),
                   "skeleton": posetrack_skeleton_1based()}]
    return {"images": images, "annotations": annotations, "categories": categories}


def to_2017_dict(seq: Sequence) -> dict:
    """The PoseTrack 2017 ``annolist`` JSON object of a sequence (the official release's fields)."""
    annolist = []
    for i, fr in enumerate(seq.frames):
        rects = []
        for p in fr.persons:
            r: dict = {}
            if p.track_id is not None:
                r["track_id"] = [int(p.track_id)]
            if p.head_box is not None:
                x1, y1, x2, y2 = _head_corners(p.head_box)
                r.update(x1=[_clean(x1)], y1=[_clean(y1)], x2=[_clean(x2)], y2=[_clean(y2)])
            if p.score is not None:
                r["score"] = [float(p.score)]
            if p.has_points:
                pts = []
                for e in range(NUM_EVAL_JOINTS):
                    s = EVAL_TO_POSETRACK[e]
                    if not p.present[s]:
                        continue
                    x, y, v = p.keypoints[s]
                    pt = {"id": [e], "x": [_clean(x)], "y": [_clean(y)], "is_visible": [_clean(v)]}
                    if p.scores is not None and not math.isnan(p.scores[s]):
                        pt["score"] = [float(p.scores[s])]
                    pts.append(pt)
                r["annopoints"] = [{"point": pts}]
            rects.append(r)
        lab = fr.is_labeled if fr.is_labeled is not None else bool(fr.persons)
        entry = {"image": [{"name": fr.file_name}], "annorect": rects, "is_labeled": [int(bool(lab))]}
        if fr.ignore_regions:
            entry["ignore_regions"] = [{"point": [{"x": [_clean(x)], "y": [_clean(y)]} for x, y in poly]}
                                       for poly in fr.ignore_regions]
        annolist.append(entry)
    return {"annolist": annolist}


def _write(obj: dict, path: str) -> None:
    d = os.path.dirname(os.fspath(path))
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.replace(tmp, path)                       # never leave a truncated file behind


def save_2018(seq: Sequence, path: str) -> None:
    """Write a sequence as a PoseTrack 2018 file."""
    _write(to_2018_dict(seq), path)


def save_2017(seq: Sequence, path: str) -> None:
    """Write a sequence as a PoseTrack 2017 ``annolist`` file."""
    _write(to_2017_dict(seq), path)


def save(seq: Sequence, path: str, fmt: str = "2018") -> None:
    """Write a sequence in format "2018" or "2017"."""
    if fmt == "2018":
        save_2018(seq, path)
    elif fmt == "2017":
        save_2017(seq, path)
    else:
        raise ValueError(f"unknown PoseTrack format {fmt!r}; expected '2017' or '2018'")


__all__ = ["MISSING_SCORE", "read_json", "detect_format", "load_sequence", "parse_sequence",
           "list_json_files", "load_folder", "to_2018_dict", "to_2017_dict", "save_2018", "save_2017", "save"]
