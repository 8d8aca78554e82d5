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
    polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    polys = [p for p in polys if len(p) >= 3]
    if not polys or not len(pts):
        return np.zeros(len(pts), dtype=bool)
    if len(polys) == 1:
        return points_in_polygon(pts, polys[0])
    a = np.concatenate(polys)
    b = np.concatenate([np.roll(p, -1, axis=0) for p in polys])
    starts = np.cumsum([0] + [len(p) for p in polys[:-1]])
    px, py = pts[:, 0:1], pts[:, 1:2]
    ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    with np.errstate(invalid="ignore", over="ignore"):
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        crossing = ((ay > py) != (by > py)) & np.where(by > ay, cross > 0, cross < 0)
        on_edge = ((cross == 0) & (np.minimum(ax, bx) <= px) & (px <= np.maximum(ax, bx))
                   & (np.minimum(ay, by) <= py) & (py <= np.maximum(ay, by)))
    inside = (np.add.reduceat(crossing.astype(np.int64), starts, axis=1) % 2 == 1) \
        & ~np.logical_or.reduceat(on_edge, starts, axis=1)
    return inside.any(axis=1)
