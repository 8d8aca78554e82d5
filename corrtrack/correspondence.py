"""Keypoint correspondences (paper §4, SPEC §1): descriptors, batched affinity maps, the training loss,
propagation of poses from frame a to frame b, a per-frame feature cache and an inference wrapper.

Coordinate frames (the names say which one a value is in):
  - image pixels: the original frame, pixel centres, (x, y);
  - input pixels: the network input (a letterboxed or cropped copy of the image); ``affine`` maps image
    -> input (``corrtrack.geometry`` convention, (2, 3));
  - feature cells: the stride-``s`` feature grid (s = 4): ``x_feat = x_input / s``; cell ``(i, j)`` is
    centred on input pixel ``(s * i, s * j)`` (see ``corrtrack.nets.bninception``).
Maps are indexed ``[..., y, x]``.

Nothing here loops over persons or joints in Python: all persons x joints of a batch go through one
gather (descriptors) and one grouped convolution (affinities).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from corrtrack import geometry
from corrtrack.keypoints import NUM_JOINTS
from corrtrack.nets.correspondence import (DESCRIPTOR_SAMPLING, RefinementNet, SiameseNet, build_refinement,
                                         build_siamese)
from corrtrack.nets.utils import IMAGE_MEAN, IMAGE_STD, normalize_images  # noqa: F401 (IMAGE_*: re-exported)



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
    """Values of each map at each candidate's joint: the track cue ``C_j^q(j^p)`` of SPEC §4.

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
    """Propagate the poses of frame a to frame b (paper §4, SPEC §3).

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


class FeatureCache:
    """LRU cache of per-frame results (features, affine, ...) keyed by e.g. the frame index, so each
    video frame goes through the backbone once and frame f is reused for the pairs (f-1, f) and
    (f, f+1). ``hits`` / ``misses`` count lookups."""

    def __init__(self, maxsize: int = 3):
        if maxsize < 1:
            raise ValueError("FeatureCache: maxsize must be >= 1")
        self.maxsize = maxsize
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __contains__(self, key: Any) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, computing (and storing) it with ``compute()`` on a miss."""
        if key in self._data:
            self.hits += 1
            self._data.move_to_end(key)
            return self._data[key]
        self.misses += 1
        value = compute()
        self._data[key] = value
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        self._data.clear()


@dataclass
class FrameFeatures:
    """Backbone output of one frame. features: (1, C, h, w) at stride ``stride`` of the network input;
    affine: (2, 3) image -> input pixels; image_hw: the original frame size."""
    features: Tensor
    affine: np.ndarray
    image_hw: tuple[int, int]


class CorrespondenceModel:
    """Inference wrapper used by tracking (recovery, association, merge) and the benchmark.

    Each whole frame is letterboxed to ``input_size`` x ``input_size`` (the release: 512 -> 128x128
    features), passed through the Siamese backbone once (cached by key) and poses are propagated with
    :func:`propagate`. ``input_size`` must be divisible by 32."""

    def __init__(self, siamese: SiameseNet, refinement: RefinementNet | None = None, input_size: int = 512,
                 device: str | torch.device = "cpu", cache_size: int = 3, subpixel: bool | str = "soft"):
        if input_size % 32:
            raise ValueError(f"CorrespondenceModel: input_size must be divisible by 32 (got {input_size})")
        self.device = torch.device(device)
        # channels-last: oneDNN's CPU convolutions are much faster on it (values are unchanged)
        fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.siamese = siamese.to(self.device, memory_format=fmt).eval()
        self.refinement = refinement.to(self.device, memory_format=fmt).eval() if refinement is not None else None
        self.input_size = int(input_size)
        self.stride = siamese.stride
        self.subpixel = subpixel
        self.cache = FeatureCache(cache_size)

    def letterbox(self, image_hw: tuple[int, int]) -> np.ndarray:
        """(2, 3) affine image -> network input for a frame of size (H, W)."""
        return geometry.letterbox_affine(tuple(image_hw), self.input_size)

    @torch.no_grad()
    def _compute(self, image: np.ndarray) -> FrameFeatures:
        hw = tuple(int(v) for v in image.shape[:2])
        m = self.letterbox(hw)
        inp = geometry.warp_image(image, m, (self.input_size, self.input_size))
        x = image_to_tensor(inp)[None].to(self.device)
        return FrameFeatures(self.siamese(x), m, hw)

    def frame_features(self, image: np.ndarray | FrameFeatures, key: Any = None) -> FrameFeatures:
        """Features of a frame ((H, W, 3) uint8 RGB); cached under ``key`` (e.g. (video, frame index))
        when given."""
        if isinstance(image, FrameFeatures):
            return image
        if key is None:
            return self._compute(image)
        return self.cache.get(key, lambda: self._compute(image))

    def propagate(self, frame_a: np.ndarray | FrameFeatures, frame_b: np.ndarray | FrameFeatures,
                  poses_a: np.ndarray, key_a: Any = None, key_b: Any = None, valid: np.ndarray | None = None,
                  refine: bool = True) -> tuple[np.ndarray, Tensor]:
        """Poses (P, J, 2|3) of frame a (image-a pixels) -> ((P, J, 3) x, y, confidence in image-b pixels,
        maps (P, J, h, w) on frame b's feature grid). ``refine=False`` uses the Siamese maps S even when
        a refinement net is loaded."""
        fa = self.frame_features(frame_a, key_a)
        fb = self.frame_features(frame_b, key_b)
        res = propagate(fa.features, fb.features, poses_a, fa.affine, fb.affine,
                        refinement=self.refinement if refine else None, stride=self.stride, valid=valid,
                        subpixel=self.subpixel, sampling=self.siamese.descriptor)
        return res.points, res.maps

    def propagate_both(self, frame_a, frame_b, poses_a: np.ndarray, key_a: Any = None, key_b: Any = None,
                       valid: np.ndarray | None = None) -> Propagation:
        """Like :meth:`propagate` but returns the full :class:`Propagation` (refined maps and S)."""
        fa = self.frame_features(frame_a, key_a)
        fb = self.frame_features(frame_b, key_b)
        return propagate(fa.features, fb.features, poses_a, fa.affine, fb.affine, refinement=self.refinement,
                         stride=self.stride, valid=valid, subpixel=self.subpixel, sampling=self.siamese.descriptor)

    def lookup(self, maps: Tensor, poses_b: np.ndarray, frame_b: np.ndarray | FrameFeatures | tuple[int, int]
               ) -> np.ndarray:
        """Values of propagated maps (Q, J, h, w) at the joints of candidate poses (P, J, 2|3) in image-b
        pixels -> (Q, P, J) (the association cue C_j^q(j^p)). ``frame_b``: the frame, its features or its
        (H, W)."""
        if isinstance(frame_b, FrameFeatures):
            m = frame_b.affine
        elif isinstance(frame_b, np.ndarray) and frame_b.ndim == 3:
            m = self.letterbox(frame_b.shape[:2])
        else:
            m = self.letterbox(tuple(frame_b))
        poses, v = _as_pose_array(poses_b)
        xy = to_feature_coords(geometry.warp_points(np.nan_to_num(poses[..., :2]), m), self.stride)
        vals = sample_maps(maps, torch.as_tensor(xy, dtype=maps.dtype, device=maps.device),
                           torch.as_tensor(v, device=maps.device))
        return vals.cpu().numpy()


# ----------------------------------------------------------------------------------------- checkpoints

def load_correspondence_checkpoint(path: str | Path, device: str | torch.device = "cpu", input_size: int = 512,
                                   **kwargs: Any) -> CorrespondenceModel:
    """A :class:`CorrespondenceModel` from a refine (or siamese) stage checkpoint or run folder
    (``corrtrack.checkpoints``: nets from ``hyper_parameters["net"]``, weights by prefix). ``model.info``:
    the file, stage, epoch, global step and the nets' kwargs."""
    from corrtrack import checkpoints

    ck = checkpoints.load(path, accept=("siamese", "refine"))
    siamese, refinement = checkpoints.correspondence_nets(ck)
    model = CorrespondenceModel(siamese, refinement, input_size=input_size, device=device, **kwargs)
    model.info = {**checkpoints.info(ck), "net": {"siamese": siamese.config(),
                                                  "refinement": refinement.config() if refinement else None}}
    return model
