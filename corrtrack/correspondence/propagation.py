"""Propagation of the poses of frame a to frame b through the correspondence maps (paper §4, §5.1)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from corrtrack import geometry
from corrtrack.correspondence.ops import maps_argmax, siamese_maps, to_feature_coords, to_input_coords
from corrtrack.keypoints import NUM_JOINTS
from corrtrack.nets.correspondence import RefinementNet


class Propagation(NamedTuple):
    """Result of :func:`propagate`. points: (P, J, 3) x, y in image-b pixels and confidence (the map
    value at the argmax; 0 and position (0, 0) for joints that were not queried); maps: (P, J, h, w)
    the maps the argmax was taken on (sigmoid(C) when refined, else S); siamese: (P, J, h, w) S;
    siamese_points: (P, J, 3) the argmax of S (equal to ``points`` without refinement)."""
    points: np.ndarray
    maps: Tensor
    siamese: Tensor
    siamese_points: np.ndarray


def _as_pose_array(poses: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    p = poses.detach().cpu().numpy() if isinstance(poses, Tensor) else np.asarray(poses, dtype=np.float64)
    p = p.reshape(-1, p.shape[-2], p.shape[-1]) if p.size else p.reshape(0, NUM_JOINTS, max(p.shape[-1], 2))
    valid = np.isfinite(p[..., :2]).all(-1)
    if p.shape[-1] >= 3:
        valid &= p[..., 2] > 0
    return p, valid


@torch.no_grad()
def propagate(f_a: Tensor, f_b: Tensor, poses_a: np.ndarray | Tensor, affine_a: np.ndarray,
              affine_b: np.ndarray, refinement: RefinementNet | None = None, stride: int = 4,
              valid: np.ndarray | None = None, subpixel: bool | str = "soft", temperature: float = 1.0,
              sampling: str = "nearest") -> Propagation:
    """Propagate the poses of frame a to frame b (paper §4, §5.1).

    f_a, f_b: (C, h, w) or (1, C, h, w) features of the two frames (from :class:`SiameseNet`);
    poses_a: (P, J, 2|3) in image-a pixels (third column: visibility or score; > 0 = queried);
    affine_a / affine_b: (2, 3) image -> network input of each frame (letterbox or crop);
    valid: (P, J) bool overriding the queried joints. With ``refinement`` the argmax is taken on
    sigmoid(C), else on S. ``subpixel``: the decoding of :func:`maps_argmax`; ``sampling``: the descriptor
    sampling of :func:`extract_descriptors` (use the Siamese net's ``descriptor``)."""
    f_a = f_a if f_a.dim() == 4 else f_a[None]
    f_b = f_b if f_b.dim() == 4 else f_b[None]
    h, w = f_b.shape[-2:]
    poses, v = _as_pose_array(poses_a)
    if valid is not None:
        v = v & np.asarray(valid, dtype=bool)
    p, j = poses.shape[:2]
    if p == 0:
        empty = f_b.new_zeros((0, j, h, w))
        return Propagation(np.zeros((0, j, 3)), empty, empty, np.zeros((0, j, 3)))
    xy_in = geometry.warp_points(np.nan_to_num(poses[..., :2]), affine_a)
    kpts = torch.as_tensor(to_feature_coords(xy_in, stride), dtype=f_a.dtype, device=f_a.device)[None]
    vt = torch.as_tensor(v, device=f_a.device)[None]
    _, s = siamese_maps(f_a, f_b, kpts, vt, temperature, sampling)
    maps = s
    if refinement is not None:
        maps = torch.sigmoid(refinement(f_a, f_b, s))
    s, maps = s[0], maps[0]
    inv_b = geometry.invert(affine_b)

    def decode(m: Tensor) -> np.ndarray:
        am = maps_argmax(m, subpixel=subpixel).double().cpu().numpy()            # (P, J, 3) feature cells
        xy_img = geometry.warp_points(to_input_coords(am[..., :2], stride), inv_b)
        out = np.concatenate([xy_img, am[..., 2:3]], axis=-1)
        out[~v] = 0.0
        return out

    s_points = decode(s)
    return Propagation(decode(maps) if refinement is not None else s_points, maps, s, s_points)
