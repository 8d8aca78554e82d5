"""The training loss of both correspondence stages: binary cross-entropy against the one-hot target map G
(paper §4.3, eq. 4 for the Siamese maps S, eq. 5 for the refinement logits C)."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def _log1mexp(l: Tensor) -> Tensor:
    """log(1 - exp(l)) for l <= 0, stable on both ends."""
    l = l.clamp(max=-1e-7)
    return torch.where(l > -0.6931, torch.log(-torch.expm1(l)), torch.log1p(-torch.exp(l)))


def correspondence_bce(maps: Tensor, cells: Tensor, inside: Tensor, query_valid: Tensor | None = None,
                       kind: str = "log_prob") -> Tensor:
    """Binary cross-entropy between predicted maps and the one-hot ground truth G (eq. 4-5), summed over
    the h*w pixels of each map and averaged over the queried keypoints.

    maps: (..., h, w) — ``kind="log_prob"``: log S (from :func:`log_softmax_maps`, Siamese);
    ``"prob"``: S itself; ``"logit"``: refinement logits C (BCE-with-logits).
    cells: (..., 2) long (x, y) target cells; inside: (...) bool (False: G all zero);
    query_valid: (...) bool, the keypoints queried in I1 (v > 0); None = all.
    Returns a scalar (0 when nothing is queried)."""
    h, w = maps.shape[-2:]
    flat = maps.reshape(-1, h * w)
    cells = cells.reshape(-1, 2)
    inside = inside.reshape(-1).bool()
    qv = torch.ones_like(inside) if query_valid is None else query_valid.reshape(-1).bool()
    idx = (cells[:, 1].clamp(0, h - 1) * w + cells[:, 0].clamp(0, w - 1))[:, None]
    if kind == "logit":
        neg = F.softplus(flat)                                # -log(1 - sigmoid(z))
        per_map = neg.sum(-1) - flat.gather(1, idx)[:, 0] * inside.to(flat.dtype)
    else:
        if kind == "log_prob":
            logp = flat
        elif kind == "prob":
            logp = torch.log(flat.clamp(min=1e-12))
        else:
            raise ValueError(f"kind must be 'log_prob', 'prob' or 'logit' (got {kind!r})")
        log1m = _log1mexp(logp)
        lt = logp.gather(1, idx)[:, 0]
        per_map = -log1m.sum(-1) + (log1m.gather(1, idx)[:, 0] - lt) * inside.to(flat.dtype)
    n = qv.sum()
    return (per_map * qv.to(per_map.dtype)).sum() / n.clamp(min=1).to(per_map.dtype)
