"""Linear sum assignment for the small matrices of one frame, identical to SciPy's solver.

SciPy's ``linear_sum_assignment`` (the shortest augmenting path method of Crouse 2016, as implemented by
P. M. Larsen) costs ~0.3 s to import, more than the whole evaluation of a typical set. Frames hold a
handful of persons, so the same algorithm in plain Python is fast enough; it follows SciPy's steps and
tie-breaking (columns scanned in reverse order, a free column preferred among equal path costs, tall
matrices transposed) so that both return the same assignment even when costs tie, which keeps the fast
MOT engine event-for-event equal to motmetrics. Large matrices go to SciPy itself.
"""
from __future__ import annotations

import math

import numpy as np

_SCIPY_ABOVE = 24 * 24       # matrices with more cells than this are handed to SciPy


def linear_sum_assignment(cost: np.ndarray, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a minimum-cost (maximum with ``maximize``) complete assignment of a finite matrix."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"expected a 2-D cost matrix, got shape {cost.shape}")
    return linear_sum_assignment_many(cost[None], maximize)[0]


def linear_sum_assignment_many(costs: np.ndarray, maximize: bool = False
                               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``linear_sum_assignment`` of each matrix of a (K, R, C) stack of finite matrices of one shape: the
    same (rows, cols) for each, with one conversion of the whole stack to Python lists (many small problems,
    e.g. the joints of one frame)."""
    costs = np.asarray(costs, dtype=np.float64)
    k, nr, nc = costs.shape
    if nr == 0 or nc == 0:
        return [(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)) for _ in range(k)]
    if nr * nc > _SCIPY_ABOVE:
        from scipy.optimize import linear_sum_assignment as scipy_lsa
        out = []
        for cost in costs:
            r, c = scipy_lsa(cost, maximize=maximize)
            out.append((np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64)))
        return out
    transpose = nc < nr
    c = costs.transpose(0, 2, 1) if transpose else costs
    if maximize:
        c = -c
    if np.isnan(c).any() or np.isneginf(c).any():
        raise ValueError("matrix contains invalid numeric entries")
    out = []
    for m in c.tolist():
        col4row = _solve(m)
        if transpose:
            order = sorted(range(len(col4row)), key=col4row.__getitem__)
            out.append((np.array([col4row[i] for i in order], dtype=np.int64),
                        np.array(order, dtype=np.int64)))
        else:
            out.append((np.arange(len(col4row), dtype=np.int64), np.array(col4row, dtype=np.int64)))
    return out


def _solve(cost: list[list[float]]) -> list[int]:
    nr, nc = len(cost), len(cost[0])
    inf = math.inf
    u = [0.0] * nr
    v = [0.0] * nc
    col4row = [-1] * nr
    row4col = [-1] * nc
    path = [-1] * nc
    for cur in range(nr):
        # shortest augmenting path from row `cur`
        spc = [inf] * nc
        sr = [False] * nr
        sc = [False] * nc
        remaining = list(range(nc - 1, -1, -1))
        min_val = 0.0
        i = cur
        sink = -1
        while sink == -1:
            index = -1
            lowest = inf
            sr[i] = True
            row = cost[i]
            ui = u[i]
            for it, j in enumerate(remaining):
                r = min_val + row[j] - ui - v[j]
                if r < spc[j]:
                    path[j] = i
                    spc[j] = r
                if spc[j] < lowest or (spc[j] == lowest and row4col[j] == -1):
                    lowest = spc[j]
                    index = it
            min_val = lowest
            if min_val == inf:
                raise ValueError("cost matrix is infeasible")
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            sc[j] = True
            remaining[index] = remaining[-1]
            remaining.pop()
        # dual update
        u[cur] += min_val
        for i in range(nr):
            if sr[i] and i != cur:
                u[i] += min_val - spc[col4row[i]]
        for j in range(nc):
            if sc[j]:
                v[j] -= min_val - spc[j]
        # augment
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            col4row[i], j = j, col4row[i]
            if i == cur:
                break
    return col4row
