"""The result object of an evaluation, its JSON shape and the familiar PoseTrack tables."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from corrtrack.evaluation.mot import MotCounts
from corrtrack.keypoints import EVAL_GROUPS, EVAL_NAMES

_INDEX = {n: i for i, n in enumerate(EVAL_NAMES)}


def nan_mean(v: np.ndarray) -> float:
    """Mean of the non-NaN values (poseval's totals); NaN when there are none."""
    v = np.asarray(v, dtype=np.float64)
    ok = ~np.isnan(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.asarray(num, dtype=np.float64) / np.where(den > 0, den, 1.0), np.nan)


@dataclass
class Metrics:
    """Per-joint arrays (15, evaluation-joint order ``keypoints.EVAL_NAMES``), percent on a 0-100 scale.

    ap: VOC AP; mota, motp, precision, recall: CLEAR-MOT; counts: summed MOT event counts per joint;
    hota: {"hota", "deta", "assa", "loca"} (per joint) when computed, else None. hota_total: their Total as
    the PoseTrack21 kit pools it (default mode), or None: the Total is then the mean of the joints (strict).
    ap_precision / ap_recall: precision and recall at the lowest score of the AP ranking (poseval's
    ``pre`` / ``rec`` of the AP part; not in the JSON).
    """

    ap: np.ndarray
    ap_precision: np.ndarray
    ap_recall: np.ndarray
    counts: MotCounts
    strict: bool = False
    engine: str = "fast"
    hota: dict[str, np.ndarray] | None = None
    hota_total: dict[str, float] | None = None
    num_sequences: int = 0
    num_frames: int = 0
    warnings: list[str] = field(default_factory=list)

    # ---- derived CLEAR-MOT values
    @property
    def mota(self) -> np.ndarray:
        c = self.counts
        return 100.0 * (1.0 - _ratio(c.misses + c.switches + c.false_positives, c.objects))

    @property
    def motp(self) -> np.ndarray:
        """100 * (1 - mean normalised distance of MATCH and SWITCH events)."""
        det = self.counts.matches + self.counts.switches
        return 100.0 * (1.0 - _ratio(self.counts.sum_dist, det))

    @property
    def precision(self) -> np.ndarray:
        det = self.counts.matches + self.counts.switches
        return 100.0 * _ratio(det, det + self.counts.false_positives)

    @property
    def recall(self) -> np.ndarray:
        det = self.counts.matches + self.counts.switches
        return 100.0 * _ratio(det, self.counts.objects)

    def total(self, name: str) -> float:
        """Plain mean of the 15 per-joint values, NaN skipped (e.g. ``total("mota")``); the PoseTrack21 kit's
        Total for the HOTA values in default mode."""
        if name in ("hota", "deta", "assa", "loca"):
            if self.hota_total is not None:
                return float(self.hota_total[name])
            return nan_mean(self.hota[name]) if self.hota is not None else float("nan")
        return nan_mean(getattr(self, name))

    def per_joint(self, name: str) -> dict[str, float]:
        vals = self.hota[name] if name in ("hota", "deta", "assa", "loca") else getattr(self, name)
        out = {n: float(v) for n, v in zip(EVAL_NAMES, vals)}
        out["total"] = self.total(name)
        return out

    def to_dict(self) -> dict:
        """The JSON shape of ``python -m corrtrack.evaluate --out`` (NaN written as null)."""
        d: dict = {k: _nulls(self.per_joint(k)) for k in ("ap", "mota", "motp", "precision", "recall")}
        c = self.counts
        d.update(num_switches=int(c.switches.sum()), num_misses=int(c.misses.sum()),
                 num_false_positives=int(c.false_positives.sum()), num_objects=int(c.objects.sum()))
        if self.hota is not None:
            for k in ("hota", "deta", "assa", "loca"):
                d[k] = _nulls(self.per_joint(k))
        return d

    def summary(self) -> dict[str, float]:
        """Flat totals, convenient for logging (``track/<method>/mota`` etc.)."""
        out = {k: self.total(k) for k in ("ap", "mota", "motp", "precision", "recall")}
        out["num_switches"] = float(self.counts.switches.sum())
        if self.hota is not None:
            out.update({k: self.total(k) for k in ("hota", "deta", "assa", "loca")})
        return out


def _nulls(d: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if v is None or math.isnan(v) else v) for k, v in d.items()}


def group_values(values: np.ndarray) -> list[float]:
    """The seven table columns (Head ... Ankl): plain means of their joints (NaN propagates, as poseval)."""
    v = np.asarray(values, dtype=np.float64)
    return [float(v[[_INDEX[n] for n in names]].mean()) for names in EVAL_GROUPS.values()]


def _cell(v: float, delim: str = " &") -> str:
    return "{:>5}".format("%1.1f" % v) + delim


def _row(vals: list[float]) -> str:
    return "&" + "".join(_cell(v) for v in vals[:-1]) + _cell(vals[-1], " \\\\")


def _header(top: list[str] | None, cols: list[str]) -> str:
    lines = []
    if top is not None:
        lines.append("&" + "".join(f" {t:<4} &" for t in top[:-1]) + f" {top[-1]:<4} \\\\")
    lines.append("&" + "".join(f" {c:<4}&" if len(c) > 4 else f" {c:<4} &" for c in cols[:-1])
                 + f" {cols[-1]:<4}\\\\")
    return "\n".join(lines)


def format_tables(m: Metrics) -> str:
    """The familiar poseval tables: AP and MOT (plus keypoint HOTA when computed)."""
    groups = list(EVAL_GROUPS)
    mode = "strict" if m.strict else "official (poseval quirks)"
    out = ["Average Precision (AP) metric:",
           _header(None, groups + ["Total"]),
           _row(group_values(m.ap) + [m.total("ap")]),
           f"Multiple Object Tracking (MOT) metrics [{mode}]:",
           _header(["MOTA"] * 8 + ["MOTP", "Prec", "Rec"], groups + ["Total"] * 4),
           _row(group_values(m.mota) + [m.total("mota"), m.total("motp"), m.total("precision"),
                                       m.total("recall")])]
    c = m.counts
    out.append(f"switches {int(c.switches.sum())}, misses {int(c.misses.sum())}, false positives "
               f"{int(c.false_positives.sum())}, objects {int(c.objects.sum())}")
    if m.hota is not None:
        kind = "strict" if m.strict else "PoseTrack21 kit"
        out += [f"Keypoint HOTA [{kind}]:",
                _header(["HOTA"] * 8 + ["DetA", "AssA", "LocA"], groups + ["Total"] * 4),
                _row(group_values(m.hota["hota"]) + [m.total("hota"), m.total("deta"), m.total("assa"),
                                                     m.total("loca")])]
    return "\n".join(out)
