"""COCO keypoint AP / AR through pycocotools (``COCOeval``, iouType "keypoints") with a layout's sigmas.

Used by the pose estimator's validation and by ``python -m experiments.stages.pose``; pycocotools is
imported on first use.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Mapping, Sequence

import numpy as np

from corrtrack.keypoints import layout as keypoint_layout

COCO_STAT_NAMES = ("ap", "ap50", "ap75", "ap_m", "ap_l", "ar", "ar50", "ar75", "ar_m", "ar_l")


def build_coco_gt(records: Sequence[Any], layout: str = "coco"):
    """A pycocotools ``COCO`` ground truth in memory from annotated images (any layout; 17 slots).

    ``records``: objects with ``image_id``, ``width``, ``height``, ``path``, ``keypoints`` (N, 17, 3)
    x, y, v in image pixels, ``boxes`` (N, 4) [x, y, w, h] and ``areas`` (N,) (e.g. the datamodules'
    ``ImageRecord``); person area = ``areas`` (COCO: the segment area from the file; PoseTrack: the box
    area)."""
    from pycocotools.coco import COCO

    names = list(keypoint_layout(layout)["names"])
    skeleton = [[a + 1, b + 1] for a, b in keypoint_layout(layout)["skeleton"]]
    images, anns = [], []
    aid = 1
    for rec in records:
        images.append({"id": int(rec.image_id), "width": int(rec.width), "height": int(rec.height),
                       "file_name": str(rec.path)})
        for p in range(len(rec.keypoints)):
            kp = np.asarray(rec.keypoints[p], np.float64)
            anns.append({"id": aid, "image_id": int(rec.image_id), "category_id": 1, "iscrowd": 0,
                         "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
                         "bbox": [float(v) for v in rec.boxes[p]], "area": float(rec.areas[p])})
            aid += 1
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": names,
                                  "skeleton": skeleton}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def coco_keypoint_eval(coco_gt, results: Sequence[Mapping], sigmas: np.ndarray,
                       image_ids: Sequence[int] | None = None, verbose: bool = False) -> dict[str, float]:
    """COCO keypoint AP/AR (pycocotools COCOeval, iouType "keypoints") of ``results`` (COCO results
    format: image_id, category_id, keypoints [51 floats in image pixels], score) against ``coco_gt``,
    with per-joint OKS ``sigmas``. ``image_ids`` restricts the evaluation (default: every GT image).
    Returns {"ap", "ap50", "ap75", "ap_m", "ap_l", "ar", ...}; all 0 when there are no results."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {k: 0.0 for k in COCO_STAT_NAMES}
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        dt = coco_gt.loadRes([dict(r) for r in results])
        ev = COCOeval(coco_gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        if image_ids is not None:
            ev.params.imgIds = sorted({int(i) for i in image_ids})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval reports -1 where a category/area has no ground truth; report 0 instead.
    return {k: float(max(v, 0.0)) for k, v in zip(COCO_STAT_NAMES, ev.stats)}
