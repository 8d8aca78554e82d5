"""The evaluation entry points: in memory (``evaluate``) and on folders (``evaluate_folders``)."""
from __future__ import annotations

import logging
import os

from corrtrack.evaluation.ap import APAccumulator
from corrtrack.evaluation.metrics import Metrics
from corrtrack.evaluation.mot import Event, evaluate_mot
from corrtrack.evaluation.prepare import EvaluationInputError, Report, prepare
from corrtrack.posetrack.io import list_json_files, load_sequence, no_gc
from corrtrack.posetrack.types import PoseTrackFormatError, Sequence

log = logging.getLogger("corrtrack.evaluation")


def evaluate(gt: dict[str, Sequence], pred: dict[str, Sequence], strict: bool = False, hota: bool = False,
             engine: str = "fast", events: dict[str, list[Event]] | None = None) -> Metrics:
    """Evaluate predictions against GT, both {sequence name: Sequence}; sequences are paired by name.

    strict=False reproduces the official numbers: poseval's AP and MOTA (MOT quirks included) and, with
    ``hota``, the PoseTrack21 evaluation kit's keypoint HOTA (its five rules included); strict=True enters
    every labeled frame into MOT with its real objects and hypotheses and computes the corrected keypoint
    HOTA (docs/evaluation.md). engine: "fast" (vectorised) or "motmetrics" (the reference, slow). ``events``, if
    given, receives each sequence's MOT events (joint, frame, type, object, hypothesis) for inspection.
    The GT dict's order is the order poseval would read the files in; it only matters for ties in joint
    scores. Warnings (bad but usable input) are logged and kept in ``Metrics.warnings``.
    """
    with no_gc():
        return _evaluate(gt, pred, strict, hota, engine, events)


def _evaluate(gt, pred, strict, hota, engine, events) -> Metrics:
    report = Report()
    seqs = prepare(gt, pred, report)
    acc = APAccumulator()
    for seq in seqs:
        for fr in seq.frames:
            acc.add(fr)
    ap = acc.result()
    counts = evaluate_mot(seqs, strict=strict, engine=engine, events=events)
    h = h_total = None
    if hota and strict:
        from corrtrack.evaluation.hota import evaluate_hota
        h = evaluate_hota(seqs)
    elif hota:
        from corrtrack.evaluation.hota_kit import evaluate_hota_kit
        h = evaluate_hota_kit(gt, pred)
        h_total = h.pop("total")
        h.pop("total_alpha")
    msgs = report.messages()
    for m in msgs:
        log.warning(m)
    return Metrics(ap=ap["ap"], ap_precision=ap["ap_precision"], ap_recall=ap["ap_recall"], counts=counts,
                   strict=strict, engine=engine, hota=h, hota_total=h_total, num_sequences=len(seqs),
                   num_frames=sum(len(s.frames) for s in seqs), warnings=msgs)


def load_folder_checked(folder: str, what: str) -> dict[str, Sequence]:
    """Load every ``*.json`` of a folder in listing order; all unreadable files are named in one error."""
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise EvaluationInputError(f"{what} folder {folder} does not exist")
    if not os.path.isdir(folder):
        raise EvaluationInputError(f"{what} path {folder} is not a folder (give the folder holding one JSON "
                                   "file per sequence)")
    files = list_json_files(folder)
    if not files:
        raise EvaluationInputError(f"{what} folder {folder} holds no *.json files")
    out: dict[str, Sequence] = {}
    errors = []
    for path in files:
        try:
            seq = load_sequence(path)
        except PoseTrackFormatError as e:
            errors.append(str(e))
            continue
        out[seq.name] = seq
    if errors:
        head = f"{len(errors)} unreadable {what} file(s):\n  " if len(errors) > 1 else ""
        raise EvaluationInputError(head + "\n  ".join(errors))
    return out


def evaluate_folders(gt_dir: str, pred_dir: str, **kwargs) -> Metrics:
    """Load both folders (one JSON per sequence, 2017 or 2018 in any mix) and ``evaluate`` them."""
    gt = load_folder_checked(gt_dir, "GT")
    pred = load_folder_checked(pred_dir, "prediction")
    _warn_2018_without_categories(pred)
    if not any(n in pred for n in gt):
        raise EvaluationInputError(
            f"none of the {len(gt)} GT files in {gt_dir} has a prediction file of the same name in "
            f"{pred_dir} (e.g. '{next(iter(gt))}.json')")
    return evaluate(gt, pred, **kwargs)


def _warn_2018_without_categories(pred: dict[str, Sequence]) -> None:
    """One warning for the 2018-format prediction files that have no ``categories``: poseval reads the
    joint order from them; without, the keypoints are taken in the PoseTrack 2018 order."""
    from corrtrack.keypoints import POSETRACK_NAMES

    missing = sorted(str(s.path) for s in pred.values() if s.categories is False)
    if missing:
        more = f" (and {len(missing) - 1} more prediction file(s) like it)" if len(missing) > 1 else ""
        log.warning("%s: a PoseTrack 2018 prediction file without 'categories'%s: its keypoints are read in the "
                    "PoseTrack 2018 joint order (%s); the official evaluation (poseval) needs 'categories'",
                    missing[0], more, ", ".join(POSETRACK_NAMES))
