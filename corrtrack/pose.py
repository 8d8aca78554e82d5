"""Top-down pose estimation: target encoding, sub-pixel decoding, flip test and the inference API.

Coordinate frames
-----------------
- *Image pixels*: the original frame, pixel centres at integer (x, y).
- *Crop pixels*: the (H, W) network input made by ``geometry.crop_affine(box, (H, W), padding)``;
  ``affine`` (2, 3) maps image -> crop pixels.
- *Output cells*: the (H/s, W/s) grid of a stride-``s`` network output; cell (i, j) is centred on crop
  pixel (s*j, s*i) (the convention of ``corrtrack.nets.bninception``).

Targets (PersonLab / G-RMI style): per joint a binary disk of ``radius`` output cells around the joint
(or a Gaussian of that sigma), and inside the disk a 2-D offset from the cell centre to the exact joint,
in output cells. Decoding takes the heatmap argmax and adds the offset there: sub-pixel positions
from a coarse grid. Confidence = heatmap probability (sigmoid) at the argmax.

Nothing here imports Lightning: tracking and recovery use :class:`PoseEstimator` directly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from corrtrack import geometry
from corrtrack.keypoints import NUM_JOINTS, POSETRACK_UNUSED_SLOTS, layout as keypoint_layout
from corrtrack.nets.utils import denormalize_images, normalize_images

DEFAULT_PADDING = 1.25
DEFAULT_INPUT_SIZE = (384, 288)     # (H, W) of a person crop (paper §6.1)
DEFAULT_VOTE_RADIUS = 2.0           # output cells; decode(): votes of the cells around the argmax


# --------------------------------------------------------------------------------------------------
# input normalisation
# --------------------------------------------------------------------------------------------------
def to_input_tensor(crops: np.ndarray) -> Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB crops -> (N, 3, H, W) float32, ImageNet-normalised
    (``nets.utils.normalize_images``)."""
    a = np.asarray(crops)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB crops, got shape {a.shape}")
    return normalize_images(a)


def from_input_tensor(x: Tensor) -> np.ndarray:
    """Inverse of :func:`to_input_tensor` (for pictures): (N, 3, H, W) -> (N, H, W, 3) uint8 RGB."""
    return denormalize_images(x)


# --------------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------------
def encode_targets(keypoints: np.ndarray, input_size: tuple[int, int], stride: int, radius: float = 2.0,
                   kind: str = "disk", unlabeled_weight: float = 0.0) -> dict[str, np.ndarray]:
    """Heatmap and offset targets of one person crop.

    keypoints: (J, 3) x, y, v in crop pixels (v > 0 = labeled). input_size: (H, W) crop size, divisible
    by ``stride``. radius: disk radius (``kind="disk"``) or Gaussian sigma (``"gaussian"``) in output
    cells; offsets are supervised where the cell lies within ``radius`` of the joint either way.

    Returns float32 arrays on the (h, w) = (H/stride, W/stride) grid:
      heatmaps (J, h, w) in [0, 1]; offsets (J, 2, h, w) dx, dy from each cell centre to the joint in
      output cells (0 outside the disk); offset_mask (J, h, w) 1 inside the disk;
      weights (J,) 1 for labeled joints (a labeled joint outside the crop is a valid all-zero target:
      the net learns it is absent), ``unlabeled_weight`` for unlabeled ones.
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
    hh, ww = _grid_shape(input_size, stride)
    j = len(kp)
    heat = np.zeros((j, hh, ww), np.float32)
    off = np.zeros((j, 2, hh, ww), np.float32)
    mask = np.zeros((j, hh, ww), np.float32)
    weights = np.where(kp[:, 2] > 0, 1.0, unlabeled_weight).astype(np.float32)
    gy, gx = np.mgrid[0:hh, 0:ww].astype(np.float64)
    for k in range(j):
        if kp[k, 2] <= 0 or not np.isfinite(kp[k, :2]).all():
            continue
        cx, cy = kp[k, 0] / stride, kp[k, 1] / stride          # joint in output cells
        dx, dy = cx - gx, cy - gy
        d2 = dx * dx + dy * dy
        inside = d2 <= radius * radius
        if kind == "disk":
            heat[k] = inside
        elif kind == "gaussian":
            heat[k] = np.exp(-d2 / (2.0 * radius * radius))
        else:
            raise ValueError(f"unknown heatmap kind {kind!r}; expected 'disk' or 'gaussian'")
        mask[k] = inside
        off[k, 0] = np.where(inside, dx, 0.0)
        off[k, 1] = np.where(inside, dy, 0.0)
    return {"heatmaps": heat, "offsets": off, "offset_mask": mask, "weights": weights}


def _grid_shape(input_size: tuple[int, int], stride: int) -> tuple[int, int]:
    h, w = int(input_size[0]), int(input_size[1])
    if h % stride or w % stride:
        raise ValueError(f"input size {h}x{w} must be divisible by the output stride {stride}")
    return h // stride, w // stride


# --------------------------------------------------------------------------------------------------
# decoding and flip test
# --------------------------------------------------------------------------------------------------
def decode(heatmaps: Tensor, offsets: Tensor, stride: int, vote_radius: float = 0.0,
           vote_weights: Tensor | None = None) -> Tensor:
    """Heatmap argmax + offset -> (B, J, 3) x, y, score in crop pixels.

    heatmaps: (B, J, h, w) probabilities; offsets: (B, J, 2, h, w) in output cells. ``vote_radius`` > 0:
    the position is the heatmap-weighted mean of the votes (cell + offset) of all cells within that many
    output cells of the argmax (the cells the disk target trains offsets at), not the argmax cell's vote
    alone; the score is the argmax probability either way. ``vote_weights`` (B, J, h, w): weigh the votes
    by these maps instead of ``heatmaps`` (the flip test takes the argmax of the averaged maps but
    weighs each branch's votes by its own).
    """
    b, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, h * w)
    score, idx = flat.max(dim=-1)
    ax = (idx % w).to(heatmaps.dtype)
    ay = torch.div(idx, w, rounding_mode="floor").to(heatmaps.dtype)
    if vote_radius > 0:
        gy, gx = torch.meshgrid(torch.arange(h, dtype=heatmaps.dtype, device=heatmaps.device),
                                torch.arange(w, dtype=heatmaps.dtype, device=heatmaps.device), indexing="ij")
        near = (gx - ax[..., None, None]) ** 2 + (gy - ay[..., None, None]) ** 2 <= vote_radius ** 2
        wgt = (heatmaps if vote_weights is None else vote_weights) * near      # (B, J, h, w)
        norm = wgt.sum((-1, -2)).clamp_min(1e-12)
        x = (wgt * (gx + offsets[:, :, 0])).sum((-1, -2)) / norm
        y = (wgt * (gy + offsets[:, :, 1])).sum((-1, -2)) / norm
        # an all-zero heatmap has no votes: fall back to the argmax cell's own
        none = wgt.sum((-1, -2)) <= 0
        if bool(none.any()):
            x0, y0 = _argmax_vote(offsets, idx, ax, ay)
            x, y = torch.where(none, x0, x), torch.where(none, y0, y)
    else:
        x, y = _argmax_vote(offsets, idx, ax, ay)
    return torch.stack([x * stride, y * stride, score], dim=-1)


def _argmax_vote(offsets: Tensor, idx: Tensor, ax: Tensor, ay: Tensor) -> tuple[Tensor, Tensor]:
    b, j = idx.shape
    off = offsets.reshape(b, j, 2, -1).gather(-1, idx[:, :, None, None].expand(b, j, 2, 1))[..., 0]
    return ax + off[..., 0], ay + off[..., 1]


def flip_back(heatmaps: Tensor, offsets: Tensor, flip_perm: Sequence[int] | np.ndarray
              ) -> tuple[Tensor, Tensor]:
    """Outputs of a horizontally flipped crop -> the unflipped crop's frame: mirror the grid, swap
    left/right channels with ``flip_perm`` (``flip_perm[i]`` = partner of joint i) and negate dx.

    The mirrored cell j (centre s*j) came from cell w-1-j of the flipped output whose centre maps back to
    crop pixel W-1-s*(w-1-j) = s*j + (s-1): mirrored offsets are relative to a centre shifted by
    (s - 1) / s cells; :func:`flip_test_decode` accounts for it.
    """
    perm = torch.as_tensor(np.asarray(flip_perm), dtype=torch.long, device=heatmaps.device)
    hm = heatmaps.flip(-1)[:, perm]
    off = offsets.flip(-1)[:, perm].clone()
    off[:, :, 0] = -off[:, :, 0]
    return hm, off


def flip_test_decode(heatmaps: Tensor, offsets: Tensor, heatmaps_f: Tensor, offsets_f: Tensor,
                     stride: int, flip_perm: Sequence[int] | np.ndarray, vote_radius: float = 0.0) -> Tensor:
    """Decode a crop and its mirror together: the argmax of the averaged heatmaps, the joint position
    the mean of the two branches' positions (each from its own cell centre). Inputs as in :func:`decode`
    (``*_f`` = raw outputs of the flipped crop; ``vote_radius`` as in :func:`decode`, each branch's
    votes weighed by its own heatmaps). Returns (B, J, 3) x, y, score in crop pixels."""
    hm_b, off_b = flip_back(heatmaps_f, offsets_f, flip_perm)
    hm = 0.5 * (heatmaps + hm_b)
    a = decode(hm, offsets, stride, vote_radius, vote_weights=heatmaps)
    b = decode(hm, off_b, stride, vote_radius, vote_weights=hm_b)
    shift = (stride - 1.0)                 # mirrored centres sit (s - 1) crop pixels right of s*j
    x = 0.5 * (a[..., 0] + b[..., 0] + shift)
    y = 0.5 * (a[..., 1] + b[..., 1])
    return torch.stack([x, y, a[..., 2]], dim=-1)


@torch.no_grad()
def predict_crops(net: nn.Module, x: Tensor, flip_test: bool = False,
                  flip_perm: Sequence[int] | np.ndarray | None = None, vote_radius: float = 0.0) -> Tensor:
    """Run the net on normalised crops x (N, 3, H, W): last-stage poses (N, J, 3) x, y, score in crop
    pixels. With ``flip_test`` the mirrored crops go through the same forward (one batch of 2N);
    ``vote_radius`` as in :func:`decode`."""
    stride = int(net.stride)
    if flip_test:
        if flip_perm is None:
            raise ValueError("flip_test needs flip_perm")
        out = net(torch.cat([x, x.flip(-1)], dim=0))
        hm = torch.sigmoid(out["heatmaps"][-1].float())
        off = out["offsets"][-1].float()
        n = x.shape[0]
        return flip_test_decode(hm[:n], off[:n], hm[n:], off[n:], stride, flip_perm, vote_radius)
    out = net(x)
    return decode(torch.sigmoid(out["heatmaps"][-1].float()), out["offsets"][-1].float(), stride, vote_radius)


def crop_to_image(poses: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """(N, J, 3) crop-pixel poses -> image pixels, given each crop's (N, 2, 3) image->crop affine."""
    poses = np.asarray(poses, dtype=np.float64)
    out = poses.copy()
    for i, m in enumerate(np.asarray(affines, dtype=np.float64)):
        out[i] = geometry.warp_points(poses[i], geometry.invert(m))
    return out


def pose_score(poses: np.ndarray, box_scores: np.ndarray | None = None, threshold: float = 0.2) -> np.ndarray:
    """(P,) instance score for COCO results: mean joint score over joints above ``threshold`` (all joints
    when none is), times the box score (1 for ground-truth boxes)."""
    s = np.asarray(poses, dtype=np.float64)[..., 2]
    above = s > threshold
    mean = np.where(above.any(-1), (s * above).sum(-1) / np.maximum(above.sum(-1), 1), s.mean(-1))
    return mean * (1.0 if box_scores is None else np.asarray(box_scores, dtype=np.float64))


# --------------------------------------------------------------------------------------------------
# inference API
# --------------------------------------------------------------------------------------------------
class PoseEstimator:
    """Batched top-down pose estimation in image pixels (used by evaluation, tracking and recovery).

    Args:
        net: a pose network (``corrtrack.nets.pose.PoseNet``); needs ``stride`` and the output dict of
            heatmap logits / offsets.
        input_size: (H, W) crop size the net was trained with.
        flip_test: average with the mirrored crop.
        layout: ``"coco"`` or ``"posetrack"`` (selects the flip permutation; PoseTrack's unused ear
            slots are returned as [0, 0, 0]).
        device: torch device for the net.
        batch_size: crops per forward pass (a flip-tested batch runs 2x this).
        padding: box enlargement used for the crops (must match training).
        vote_radius: decoding (:func:`decode`): the heatmap-weighted votes of the cells within this many
            output cells of the argmax (0: the argmax cell's offset alone).
    """

    def __init__(self, net: nn.Module, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE, flip_test: bool = True,
                 layout: str = "coco", device: str | torch.device = "cpu", batch_size: int = 32,
                 padding: float = DEFAULT_PADDING, vote_radius: float = DEFAULT_VOTE_RADIUS):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        _grid_shape(self.input_size, int(net.stride))
        self.flip_test = bool(flip_test)
        self.layout = layout
        self.flip_perm = keypoint_layout(layout)["flip_perm"]
        self.batch_size = int(batch_size)
        self.padding = float(padding)
        self.vote_radius = float(vote_radius)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", **overrides
                        ) -> "PoseEstimator":
        """Load a ``PoseEstimatorModule`` Lightning checkpoint (a file or a run folder) without importing
        Lightning (``corrtrack.checkpoints``): the net is rebuilt from ``hyper_parameters["net"]`` and
        loaded from the ``net.``-prefixed state dict; ``input_size``, ``layout``, ``padding``,
        ``flip_test``, ``vote_radius`` (default 2 for older checkpoints) come from the hyper-parameters
        unless given in ``overrides`` (any :class:`PoseEstimator` argument)."""
        from corrtrack import checkpoints

        ck = checkpoints.load(path, accept=("pose", "finetune"))
        net = checkpoints.pose_net(ck)
        hp = ck.hparams
        kwargs = dict(input_size=tuple(hp.get("input_size", DEFAULT_INPUT_SIZE)), layout=hp.get("layout", "coco"),
                      padding=float(hp.get("padding", DEFAULT_PADDING)),
                      flip_test=bool(hp.get("flip_test", True)),
                      vote_radius=float(hp.get("vote_radius", DEFAULT_VOTE_RADIUS)))
        kwargs.update(overrides)
        return cls(net, device=device, **kwargs)

    def crop(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crops of ``boxes`` (P, 4) [x, y, w, h] from an (H, W, 3) RGB frame: (P, h, w, 3) uint8 and the
        (P, 2, 3) image->crop affines."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        crops = np.zeros((len(boxes), *self.input_size, 3), np.uint8)
        affines = np.zeros((len(boxes), 2, 3), np.float64)
        for i, b in enumerate(boxes):
            affines[i] = geometry.crop_affine(b, self.input_size, padding=self.padding)
            crops[i] = geometry.warp_image(frame, affines[i], self.input_size)
        return crops, affines

    @torch.no_grad()
    def estimate_crops(self, crops: np.ndarray, affines: np.ndarray) -> np.ndarray:
        """Poses of prepared crops: (N, H, W, 3) uint8 RGB crops and their (N, 2, 3) image->crop affines
        -> (N, 17, 3) x, y, score in image pixels. Runs in batches of ``batch_size``."""
        n = len(crops)
        out = np.zeros((n, int(getattr(self.net, "num_joints", NUM_JOINTS)), 3), np.float64)
        for s in range(0, n, self.batch_size):
            x = to_input_tensor(crops[s:s + self.batch_size]).to(self.device)
            p = predict_crops(self.net, x, self.flip_test, self.flip_perm, self.vote_radius).cpu().double().numpy()
            out[s:s + len(p)] = crop_to_image(p, affines[s:s + len(p)])
        if self.layout == "posetrack":
            out[:, list(POSETRACK_UNUSED_SLOTS)] = 0.0
        return out

    def estimate(self, frames: Sequence[np.ndarray] | np.ndarray,
                 boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Poses of every box of every frame, all crops batched together.

        frames: F frames, each (H, W, 3) uint8 RGB (a list, or an (F, H, W, 3) array).
        boxes: F arrays of (P_f, 4) [x, y, w, h] in image pixels (P_f may be 0).
        Returns F arrays (P_f, 17, 3): x, y, score in image pixels.
        """
        if len(frames) != len(boxes):
            raise ValueError(f"estimate: {len(frames)} frames but {len(boxes)} box arrays")
        crops, affines, counts = [], [], []
        for frame, b in zip(frames, boxes):
            c, a = self.crop(np.asarray(frame), b)
            crops.append(c)
            affines.append(a)
            counts.append(len(c))
        if sum(counts) == 0:
            return [np.zeros((0, NUM_JOINTS, 3)) for _ in counts]
        poses = self.estimate_crops(np.concatenate(crops), np.concatenate(affines))
        return list(np.split(poses, np.cumsum(counts)[:-1]))


# --------------------------------------------------------------------------------------------------
# pictures
# --------------------------------------------------------------------------------------------------
def draw_pose(image: np.ndarray, pose: np.ndarray, skeleton: Sequence[tuple[int, int]],
              threshold: float = 0.2, color: tuple[int, int, int] = (255, 64, 0), radius: int = 2,
              thickness: int = 1) -> np.ndarray:
    """Draw one (J, 3) pose (x, y, score in the image's pixels) onto an RGB uint8 image (in place)."""
    ok = pose[:, 2] > threshold
    for a, b in skeleton:
        if ok[a] and ok[b]:
            cv2.line(image, (int(round(pose[a, 0])), int(round(pose[a, 1]))),
                     (int(round(pose[b, 0])), int(round(pose[b, 1]))), color, thickness, cv2.LINE_AA)
    for k in np.flatnonzero(ok):
        cv2.circle(image, (int(round(pose[k, 0])), int(round(pose[k, 1]))), radius, (255, 255, 0), -1,
                   cv2.LINE_AA)
    return image


def pose_grid(crops: np.ndarray, poses: np.ndarray, skeleton: Sequence[tuple[int, int]],
              gt: np.ndarray | None = None, cols: int = 8, scale: int = 2) -> np.ndarray:
    """A contact sheet of (N, H, W, 3) crops with (N, J, 3) crop-pixel poses (and optional GT in green)."""
    n = len(crops)
    if n == 0:
        return np.zeros((8, 8, 3), np.uint8)
    h, w = crops.shape[1] * scale, crops.shape[2] * scale
    rows = (n + cols - 1) // cols
    sheet = np.full((rows * h, min(n, cols) * w, 3), 255, np.uint8)
    for i in range(n):
        img = cv2.resize(crops[i], (w, h), interpolation=cv2.INTER_LINEAR)
        if gt is not None:
            g = np.asarray(gt[i], dtype=np.float64).copy()
            g[:, :2] = (g[:, :2] + 0.5) * scale - 0.5
            draw_pose(img, g, skeleton, threshold=0.0, color=(0, 200, 0))
        p = np.asarray(poses[i], dtype=np.float64).copy()
        p[:, :2] = (p[:, :2] + 0.5) * scale - 0.5
        draw_pose(img, p, skeleton, color=(255, 64, 0), thickness=2)
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    return sheet
