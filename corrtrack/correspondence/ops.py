"""Coordinates, descriptors, affinity maps and their decoding (paper §4.1, eq. 1-3), batched over persons
and joints. Frames and conventions: ``corrtrack.correspondence``."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from corrtrack.nets.correspondence import DESCRIPTOR_SAMPLING
from corrtrack.nets.utils import normalize_images


def image_to_tensor(image: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, normalised with IMAGE_MEAN / IMAGE_STD."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    return normalize_images(image)


def to_feature_coords(xy: Tensor | np.ndarray, stride: int = 4) -> Tensor | np.ndarray:
    """Input pixels -> feature cells (float): ``xy / stride``."""
    return xy / stride


def to_input_coords(xy: Tensor | np.ndarray, stride: int = 4) -> Tensor | np.ndarray:
    """Feature cells -> input pixels: ``xy * stride``."""
    return xy * stride


def nearest_cell(xy_feat: Tensor) -> Tensor:
    """(..., 2) feature coordinates -> (..., 2) long cell holding them, ``floor(x + 0.5)`` (round half
    up)."""
    return torch.floor(xy_feat + 0.5).long()


def target_cells(xy_input: Tensor, size_hw: tuple[int, int], stride: int = 4) -> tuple[Tensor, Tensor]:
    """Ground-truth cells of the one-hot maps G (eq. 3) from (..., 2) positions in input pixels of I2.

    Returns (cells (..., 2) long (x, y), inside (...) bool); G is all-zero where ``inside`` is False
    (the warped keypoint left I2: truncation)."""
    cells = nearest_cell(torch.nan_to_num(xy_input / stride, nan=-1e6))
    h, w = size_hw
    inside = (cells[..., 0] >= 0) & (cells[..., 0] < w) & (cells[..., 1] >= 0) & (cells[..., 1] < h)
    inside = inside & torch.isfinite(xy_input).all(dim=-1)
    return cells, inside


def index_to_cells(target_idx: Tensor, width: int) -> Tensor:
    """(...) flat cell indices ``row * width + col`` (as the pair datamodule stores targets; -1 = absent,
    read as cell 0) -> (..., 2) long (x, y) cells."""
    t = target_idx.clamp(min=0)
    return torch.stack([t % width, torch.div(t, width, rounding_mode="floor")], dim=-1)


def extract_descriptors(f1: Tensor, kpts: Tensor, valid: Tensor | None = None, sampling: str = "nearest") -> Tensor:
    """Descriptors d_j^p: the 3x3 patch of F1 around each keypoint, zero-padded.

    f1: (B, C, h, w); kpts: (B, P, J, 2) (x, y) in feature cells; valid: (B, P, J) bool (None = all).
    ``sampling``: ``"nearest"`` takes the patch around the nearest cell (the paper's wording);
    ``"bilinear"`` samples the 3x3 grid of points ``kpt + (dx, dy)``, dx, dy in {-1, 0, 1}, bilinearly, so
    the descriptor sits exactly on the keypoint instead of up to half a cell (2 input pixels) away.
    Returns (B, P, J, C, 3, 3); invalid keypoints and keypoints whose nearest cell is outside F1 get
    all-zero descriptors. ``desc[..., c, ky, kx] = F1[c, y + ky - 1, x + kx - 1]`` (the layout of a conv2d
    weight)."""
    if sampling not in DESCRIPTOR_SAMPLING:
        raise ValueError(f"descriptor sampling must be one of {DESCRIPTOR_SAMPLING} (got {sampling!r})")
    b, c, h, w = f1.shape
    _, p, j, _ = kpts.shape
    k = torch.nan_to_num(kpts.detach(), nan=-1e6)
    cells = nearest_cell(k)                                                      # (B, P, J, 2)
    centre_ok = (cells[..., 0] >= 0) & (cells[..., 0] < w) & (cells[..., 1] >= 0) & (cells[..., 1] < h)
    centre_ok = centre_ok & torch.isfinite(kpts).all(dim=-1)
    if valid is not None:
        centre_ok = centre_ok & valid.bool()
    if sampling == "bilinear":
        d = torch.arange(-1, 2, device=f1.device, dtype=f1.dtype)
        dy, dx = torch.meshgrid(d, d, indexing="ij")
        xs = k[..., 0, None, None].to(f1.dtype) + dx                             # (B, P, J, 3, 3)
        ys = k[..., 1, None, None].to(f1.dtype) + dy
        # align_corners=True: grid -1 / +1 are the centres of the first / last cell (cell i at i)
        grid = torch.stack([xs * (2.0 / max(w - 1, 1)) - 1, ys * (2.0 / max(h - 1, 1)) - 1], dim=-1)
        g = F.grid_sample(f1, grid.reshape(b, p * j * 3, 3, 2), mode="bilinear", padding_mode="zeros",
                          align_corners=True)                                    # (B, C, P*J*3, 3)
        g = g.reshape(b, c, p, j, 3, 3).permute(0, 2, 3, 1, 4, 5)
        return g * centre_ok[..., None, None, None].to(g.dtype)
    d = torch.arange(-1, 2, device=f1.device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")                                 # (3, 3)
    xs = cells[..., 0, None, None] + dx                                          # (B, P, J, 3, 3)
    ys = cells[..., 1, None, None] + dy
    ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h) & centre_ok[..., None, None]
    idx = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).reshape(b, 1, -1)        # (B, 1, P*J*9)
    g = f1.reshape(b, c, h * w).gather(2, idx.expand(b, c, idx.shape[-1]))       # (B, C, P*J*9)
    g = g.reshape(b, c, p, j, 3, 3).permute(0, 2, 3, 1, 4, 5)                    # (B, P, J, C, 3, 3)
    return g * ok[:, :, :, None].to(g.dtype)


def affinity(desc: Tensor, f2: Tensor) -> Tensor:
    """Affinity maps A = d (*) F2 (eq. 1): correlation with padding 1, every person x joint of every
    batch item in one grouped convolution.

    desc: (B, P, J, C, 3, 3); f2: (B, C, h, w) -> (B, P, J, h, w)."""
    b, p, j, c, kh, kw = desc.shape
    h, w = f2.shape[-2:]
    if p * j == 0:
        return f2.new_zeros((b, p, j, h, w))
    out = F.conv2d(f2.reshape(1, b * c, h, w), desc.reshape(b * p * j, c, kh, kw), padding=kh // 2, groups=b)
    return out.reshape(b, p, j, h, w)


def affinity_maps(f1: Tensor, f2: Tensor, kpts: Tensor, batch_index: Tensor, sampling: str = "nearest") -> Tensor:
    """Ragged form of :func:`affinity` for training batches with a varying number of queried keypoints
    per image: kpts (N, 2) feature cells of F1, batch_index (N,) long (the image of each keypoint) ->
    affinity logits (N, h, w). Still one gather and one grouped convolution: the keypoints are scattered
    into a padded (B, K_max) layout and gathered back."""
    b = f1.shape[0]
    h, w = f2.shape[-2:]
    n = kpts.shape[0]
    if n == 0:
        return f2.new_zeros((0, h, w))
    batch_index = batch_index.long()
    counts = torch.bincount(batch_index, minlength=b)
    order = torch.argsort(batch_index, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(batch_index)
    rank[order] = torch.arange(n, device=kpts.device) - starts[batch_index[order]]
    k = int(counts.max())
    padded = kpts.new_zeros((b, k, 1, 2))
    valid = torch.zeros((b, k, 1), dtype=torch.bool, device=kpts.device)
    padded[batch_index, rank, 0] = kpts.to(padded.dtype)
    valid[batch_index, rank, 0] = True
    a = affinity(extract_descriptors(f1, padded, valid, sampling), f2)            # (B, K, 1, h, w)
    return a[batch_index, rank, 0]


def softmax_maps(a: Tensor, temperature: float = 1.0) -> Tensor:
    """S = softmax of (..., h, w) affinities over all h*w positions (eq. 2)."""
    shape = a.shape
    return torch.softmax(a.reshape(*shape[:-2], -1) / temperature, dim=-1).reshape(shape)


def log_softmax_maps(a: Tensor, temperature: float = 1.0) -> Tensor:
    """log S, numerically stable (for the Siamese loss)."""
    shape = a.shape
    return torch.log_softmax(a.reshape(*shape[:-2], -1) / temperature, dim=-1).reshape(shape)


def siamese_maps(f1: Tensor, f2: Tensor, kpts: Tensor, valid: Tensor | None = None,
                 temperature: float = 1.0, sampling: str = "nearest") -> tuple[Tensor, Tensor]:
    """Descriptors + affinities + softmax in one call: returns (A, S), each (B, P, J, h, w).
    kpts (B, P, J, 2) in feature cells of F1; ``sampling`` as in :func:`extract_descriptors`."""
    a = affinity(extract_descriptors(f1, kpts, valid, sampling), f2)
    return a, softmax_maps(a, temperature)


SUBPIXEL = (False, True, "quarter", "soft")


def maps_argmax(maps: Tensor, subpixel: bool | str = True) -> Tensor:
    """(..., h, w) maps -> (..., 3): (x, y) of the maximum in feature cells and the map value there.

    ``subpixel``: False = the cell; True or ``"quarter"`` = shifted by a quarter cell towards the larger
    neighbour per axis (the usual heatmap decoding); ``"soft"`` = the centre of mass of the squared map
    values in the 3x3 window around the maximum (cells outside the map weigh 0), which follows the
    sub-cell balance of the neighbours instead of a fixed quarter step."""
    if subpixel not in SUBPIXEL:
        raise ValueError(f"subpixel must be one of {SUBPIXEL} (got {subpixel!r})")
    h, w = maps.shape[-2:]
    flat = maps.reshape(-1, h * w)
    val, idx = flat.max(dim=-1)
    xi, yi = idx % w, torch.div(idx, w, rounding_mode="floor")
    x, y = xi.to(maps.dtype), yi.to(maps.dtype)
    if subpixel == "soft":
        d = torch.arange(-1, 2, device=maps.device)
        yy = (yi[:, None, None] + d[None, :, None]).expand(-1, 3, 3)
        xx = (xi[:, None, None] + d[None, None, :]).expand(-1, 3, 3)
        ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        v = flat.gather(1, (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(-1, 9)).reshape(-1, 3, 3)
        wgt = v.clamp(min=0).square() * ok.to(v.dtype)
        tot = wgt.sum((1, 2))
        safe = tot > 0
        x = torch.where(safe, (wgt * xx.to(v.dtype)).sum((1, 2)) / tot.clamp(min=1e-30), x)
        y = torch.where(safe, (wgt * yy.to(v.dtype)).sum((1, 2)) / tot.clamp(min=1e-30), y)
    elif subpixel:

        def at(yy: Tensor, xx: Tensor) -> tuple[Tensor, Tensor]:
            ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            return flat.gather(1, (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1))[:, None])[:, 0], ok

        def step(hi: tuple[Tensor, Tensor], lo: tuple[Tensor, Tensor]) -> Tensor:
            return torch.where(hi[1] & lo[1], 0.25 * torch.sign(hi[0] - lo[0]), 0.0)  # border: no shift

        x = x + step(at(yi, xi + 1), at(yi, xi - 1))
        y = y + step(at(yi + 1, xi), at(yi - 1, xi))
    return torch.stack([x, y, val], dim=-1).reshape(*maps.shape[:-2], 3)


def sample_maps(maps: Tensor, points: Tensor, valid: Tensor | None = None) -> Tensor:
    """Values of each map at each candidate's joint: the track cue ``C_j^q(j^p)`` of eq. 6 (paper §5.2).

    maps: (Q, J, h, w); points: (P, J, 2) in feature cells (nearest cell); valid: (P, J) bool.
    Returns (Q, P, J); 0 where the point is invalid or outside the map."""
    q, j, h, w = maps.shape
    p = points.shape[0]
    cells = nearest_cell(torch.nan_to_num(points, nan=-1e6))
    ok = (cells[..., 0] >= 0) & (cells[..., 0] < w) & (cells[..., 1] >= 0) & (cells[..., 1] < h)
    ok = ok & torch.isfinite(points).all(-1)
    if valid is not None:
        ok = ok & valid.bool()
    idx = (cells[..., 1].clamp(0, h - 1) * w + cells[..., 0].clamp(0, w - 1))     # (P, J)
    flat = maps.reshape(q, j, h * w)
    g = flat.gather(2, idx.t()[None].expand(q, j, p))                              # (Q, J, P)
    return g.permute(0, 2, 1) * ok[None].to(maps.dtype)
