"""PoseTrack evaluation: per-joint AP and CLEAR-MOT equal to poseval's official numbers, plus keypoint HOTA
equal to the PoseTrack21 kit's (the corrected metrics with ``strict=True``).

In memory (the training callback)::

    from corrtrack.evaluation import evaluate, format_tables
    metrics = evaluate(gt_sequences, pred_sequences, strict=False, hota=True)
    metrics.to_dict()["mota"]["total"]; metrics.summary()["hota"]; print(format_tables(metrics))

On folders: ``python -m corrtrack.evaluate --gt GT_DIR --pred PRED_DIR``. Semantics: docs/evaluation.md.
This package imports numpy only (SciPy lazily, motmetrics only for ``engine="motmetrics"``), never torch.
"""
from corrtrack.evaluation.core import evaluate, evaluate_folders, load_folder_checked
from corrtrack.evaluation.metrics import Metrics, format_tables
from corrtrack.evaluation.mot import MotCounts
from corrtrack.evaluation.prepare import EvaluationInputError

__all__ = ["evaluate", "evaluate_folders", "load_folder_checked", "Metrics", "MotCounts", "format_tables",
           "EvaluationInputError"]
