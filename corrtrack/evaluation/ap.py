"""Per-joint average precision with poseval's person assignment (docs/evaluation.md).

Per frame: a prediction's PCKh against a GT person = matched joints / GT joints; each prediction keeps
only its best GT (lowest index on ties); each GT takes, among the predictions that kept it, the one with
the highest PCKh (lowest index on ties; PCKh 0 assigns nothing). Joints of an assigned prediction are
true or false positives by their own match; joints of the other predictions are false positives.
Then per joint: rank by score, VOC all-points AP with the monotone precision envelope.
"""
from __future__ import annotations

import numpy as np

from corrtrack.evaluation.prepare import DIST_THRESH, J, PreparedFrame


def frame_labels(fr: PreparedFrame) -> np.ndarray:
    """(P, 15) bool: is each predicted joint a true positive (only meaningful where ``fr.pmask``).

    The frame-by-frame statement of the rule; ``prepare.sequence_labels`` computes the same for a whole
    sequence at once (tests check they agree)."""
    P, G = fr.dist.shape[:2]
    labels = np.zeros((P, J), dtype=bool)
    if P == 0 or G == 0:
        return labels
    match = fr.dist <= DIST_THRESH                                   # (P, G, 15)
    n_gt = fr.gmask.sum(1)                                           # (G,)
    cnt = match.sum(2).astype(np.float64)                            # (P, G)
    pck = np.where(n_gt > 0, cnt / np.maximum(n_gt, 1), cnt)
    rows = np.arange(P)
    best = pck.argmax(1)
    kept = np.zeros_like(pck)
    kept[rows, best] = pck[rows, best]
    pr_to_gt = kept.argmax(0)                                        # (G,) best prediction per GT
    assigned = kept.max(0) > 0
    if assigned.any():
        g = np.nonzero(assigned)[0]
        p = pr_to_gt[g]
        labels[p] = match[p, g]
    return labels


def voc_ap(scores: np.ndarray, labels: np.ndarray, n_gt: float) -> tuple[float, float, float]:
    """(AP, precision, recall) in percent for one joint; AP 0 without predictions.

    Ranking is ``argsort(scores)[::-1]`` on float64, exactly poseval's call, so equal scores are ordered
    as the official tool orders them (given the same input order).
    """
    if len(scores) == 0:
        return 0.0, 0.0, 0.0
    order = np.argsort(np.asarray(scores, dtype=np.float64))[::-1]
    tp = np.cumsum(labels[order])
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / np.float64(n_gt)
        precision = tp / np.arange(1, len(tp) + 1, dtype=np.float64)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]                   # monotone envelope
    with np.errstate(invalid="ignore"):
        i = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
        ap = np.sum((mrec[i] - mrec[i - 1]) * mpre[i])
    return float(ap * 100), float(precision[-1] * 100), float(recall[-1] * 100)


class APAccumulator:
    """Collects (score, label) per predicted joint, in poseval's order: frames, then predictions."""

    def __init__(self) -> None:
        self.scores: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.n_gt = np.zeros(J, dtype=np.int64)

    def add(self, fr: PreparedFrame) -> None:
        self.n_gt += fr.gmask.sum(0)
        if len(fr.pid):
            self.scores.append(fr.pscore)
            self.labels.append(fr.labels if fr.labels is not None else frame_labels(fr))
            self.masks.append(fr.pmask)

    def result(self) -> dict[str, np.ndarray]:
        ap, pre, rec = np.zeros(J), np.zeros(J), np.zeros(J)
        if self.scores:
            s, lab, m = (np.concatenate(x) for x in (self.scores, self.labels, self.masks))
            for j in range(J):
                sel = m[:, j]
                ap[j], pre[j], rec[j] = voc_ap(s[sel, j], lab[sel, j], float(self.n_gt[j]))
        return {"ap": ap, "ap_precision": pre, "ap_recall": rec, "n_gt": self.n_gt.copy()}
