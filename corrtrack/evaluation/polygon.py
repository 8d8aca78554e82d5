"""Vectorised point-in-polygon test with poseval's semantics (shapely ``Polygon.contains``).

A point is ignored only when it lies strictly inside a region: points on the boundary are not
contained. The test is the even-odd crossing rule with exact orientation signs (no division), so
integer coordinates on an edge or a vertex are classified exactly. Polygons with fewer than three
vertices contain nothing (shapely would refuse to build them).
"""
from __future__ import annotations

import numpy as np


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) True where a point of ``points`` (N, 2) lies strictly inside ``polygon`` (K, 2)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if len(poly) < 3 or n == 0:
        return np.zeros(n, dtype=bool)
    a = poly                                           # edges a -> b, closed
    b = np.roll(poly, -1, axis=0)
    px, py = pts[:, 0:1], pts[:, 1:2]                  # (N, 1) against (K,) edges
    ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    with np.errstate(invalid="ignore", over="ignore"):
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)        # > 0: point left of a->b
        straddle = (ay > py) != (by > py)
        up = by > ay
        crossing = straddle & np.where(up, cross > 0, cross < 0)
        inside = (np.count_nonzero(crossing, axis=1) % 2) == 1
        on_edge = ((cross == 0) & (np.minimum(ax, bx) <= px) & (px <= np.maximum(ax, bx))
                   & (np.minimum(ay, by) <= py) & (py <= np.maximum(ay, by))).any(axis=1)
    return inside & ~on_edge


def points_in_any(points: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """(N,) True where a point lies strictly inside at least one of ``polygons`` (all edges in one batch)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points_in_regions(pts, np.zeros(len(pts), dtype=np.int64), [polygons])


def points_in_regions(points: np.ndarray, owner: np.ndarray, regions: list[list[np.ndarray]]) -> np.ndarray:
    """(N,) True where a point lies strictly inside at least one polygon of its own group, for many groups
    (e.g. the frames of a sequence) in one batch.

    points: (N, 2) pixels; owner: (N,) group index of each point; regions: per group, a list of (K, 2)
    polygons (an empty list or None: nothing is inside). Each point is tested against the edges of its
    group's polygons only, with the same arithmetic as ``points_in_polygon``.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    owner = np.asarray(owner, dtype=np.int64)
    out = np.zeros(len(pts), dtype=bool)
    polys, owners = [], []
    for g, group in enumerate(regions):
        for poly in group or ():
            poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            if len(poly) >= 3:
                polys.append(poly)
                owners.append(g)
    if not polys or not len(pts):
        return out
    n_poly = len(polys)
    sizes = np.array([len(x) for x in polys], dtype=np.int64)
    first = np.cumsum(sizes) - sizes
    a = np.concatenate(polys)                                 # edges a -> b, each polygon closed
    nxt = np.arange(1, len(a) + 1)
    nxt[first + sizes - 1] = first
    b = a[nxt]
    edge_poly = np.repeat(np.arange(n_poly), sizes)
    edges = np.bincount(np.asarray(owners), weights=sizes, minlength=len(regions)).astype(np.int64)
    # every (point, edge of the point's group) pair, ordered by point, then edge
    k = edges[owner]
    pi = np.repeat(np.arange(len(pts)), k)
    if not len(pi):
        return out
    first_edge = (np.cumsum(edges) - edges)[owner]
    ei = np.repeat(first_edge - (np.cumsum(k) - k), k) + np.arange(len(pi))
    px, py = pts[pi, 0], pts[pi, 1]
    ax, ay, bx, by = a[ei, 0], a[ei, 1], b[ei, 0], b[ei, 1]
    with np.errstate(invalid="ignore", over="ignore"):
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)        # > 0: point left of a->b
        crossing = ((ay > py) != (by > py)) & np.where(by > ay, cross > 0, cross < 0)
        on_edge = ((cross == 0) & (np.minimum(ax, bx) <= px) & (px <= np.maximum(ax, bx))
                   & (np.minimum(ay, by) <= py) & (py <= np.maximum(ay, by)))
    # one run of pairs per (point, polygon): even-odd rule, the boundary excluded
    key = pi * n_poly + edge_poly[ei]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    inside = (np.add.reduceat(crossing.astype(np.int64), starts) % 2 == 1) \
        & ~np.logical_or.reduceat(on_edge, starts)
    out[pi[starts[inside]]] = True
    return out
