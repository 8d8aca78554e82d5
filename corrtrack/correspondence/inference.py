"""The inference wrapper used by tracking and the benchmarks: whole frames letterboxed, backbone features
cached per frame, poses propagated; built from a trained checkpoint by
:func:`load_correspondence_checkpoint`."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from corrtrack import geometry
from corrtrack.correspondence.ops import image_to_tensor, sample_maps, to_feature_coords
from corrtrack.correspondence.propagation import Propagation, _as_pose_array, propagate
from corrtrack.nets.correspondence import RefinementNet, SiameseNet


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
