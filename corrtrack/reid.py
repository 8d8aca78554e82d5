"""Person re-identification: appearance embeddings of person boxes and the retrieval metrics.

:class:`ReIDEmbedder` is the inference API of the tracker's ``reid`` association cue: every box of a
frame is cropped (``geometry.crop_affine`` at the net's input size and ``padding``), all crops of the
frame go through the net in one forward, and the BNNeck embeddings come back L2-normalised, so the
cosine similarity of two boxes is the dot product of their rows. It loads this project's re-ID
checkpoints (``stage: reid``, :meth:`ReIDEmbedder.from_checkpoint`) and a user's own ResNet-50 re-ID
weights from a local file (:meth:`ReIDEmbedder.from_resnet50_weights`); :meth:`ReIDEmbedder.load`
picks the right one. Nothing is downloaded, nothing here imports Lightning.

:func:`retrieval_metrics`: rank-1 (CMC top-1) and mean average precision of a query x gallery distance
matrix, the standard person re-ID evaluation, with a per-pair "ignore" mask (the query itself, crops of
the same frame).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from corrtrack import geometry
from corrtrack.nets.reid import ReIDNet, ResNet50ReID, build_reid_net, convert_resnet50_state_dict
from corrtrack.nets.utils import normalize_images

DEFAULT_INPUT_SIZE = (256, 128)
DEFAULT_PADDING = 1.1


def crop_persons(frame: np.ndarray, boxes: np.ndarray, input_size: tuple[int, int],
                 padding: float = DEFAULT_PADDING) -> np.ndarray:
    """(N, H, W, 3) uint8 crops of ``boxes`` (N, 4) [x, y, w, h] in image pixels from an (H0, W0, 3)
    uint8 RGB ``frame``: each box enlarged by ``padding`` at the crop's aspect ratio
    (``geometry.crop_affine``); pixels outside the frame are black. The one crop rule of training
    (validation crops), evaluation and tracking."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = int(input_size[0]), int(input_size[1])
    out = np.zeros((len(boxes), h, w, 3), np.uint8)
    for i, b in enumerate(boxes):
        out[i] = geometry.warp_image(frame, geometry.crop_affine(b, (h, w), padding=padding), (h, w))
    return out


class ReIDEmbedder:
    """Appearance embeddings of person boxes (the tracker's ``reid`` cue).

    Args:
        net: a re-ID net (``corrtrack.nets.reid``); its ``embed`` gives the (B, D) BNNeck embeddings.
        input_size: (H, W) crop size the net was trained at.
        padding: box enlargement of the crops (as in training).
        device: torch device.
        batch_size: crops per forward; None (default) = all boxes of a frame in one forward.
    """

    def __init__(self, net: ReIDNet, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
                 padding: float = DEFAULT_PADDING, device: str | torch.device = "cpu",
                 batch_size: int | None = None):
        self.device = torch.device(device)
        # channels-last: oneDNN's CPU convolutions run much faster on it; values are unchanged
        fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.net = net.to(self.device, memory_format=fmt).eval()
        self._fmt = fmt
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.padding = float(padding)
        self.batch_size = None if batch_size is None else int(batch_size)

    @property
    def dim(self) -> int:
        """D, the embedding dimension."""
        return int(self.net.out_dim)

    # -- loading ------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", **overrides: Any
                        ) -> "ReIDEmbedder":
        """A ``ReIDModule`` checkpoint (a ``.ckpt`` file or a run folder; ``hyper_parameters["stage"] ==
        "reid"``), loaded without Lightning (``corrtrack.checkpoints``): the net is rebuilt from
        ``hyper_parameters["net"]``, loaded from the ``net.``-prefixed weights, and its training
        classifier is dropped; ``input_size`` and ``padding`` come from the hyper-parameters unless given
        in ``overrides`` (any :class:`ReIDEmbedder` argument). A missing file, a corrupt one or another
        stage's checkpoint is a one-line ``corrtrack.checkpoints.CheckpointError`` (a ValueError; a
        FileNotFoundError when missing) naming the file."""
        from corrtrack import checkpoints

        ck = checkpoints.load(path, accept=("reid",))
        return cls(reid_net(ck), device=device, **{**_inference_args(ck.hparams), **overrides})
    @classmethod
    def from_resnet50_weights(cls, path: str | Path, device: str | torch.device = "cpu",
                              last_stride: int = 1, **kwargs: Any) -> "ReIDEmbedder":
        """A user's own ResNet-50 re-ID weights from a local ``.pth`` / ``.pt`` / ``.ckpt`` file (a state
        dict, or a dict holding one under ``state_dict`` / ``model``), in any layout
        :func:`corrtrack.nets.reid.convert_resnet50_state_dict` accepts. Every trunk and BNNeck tensor
        of the net must be found (a classifier is ignored); else ValueError naming the file and the
        missing keys. ``kwargs``: :class:`ReIDEmbedder` arguments (``input_size`` default 256x128, the
        usual re-ID crop, ``padding``, ``batch_size``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"re-ID weights not found: {path}")
        obj = _torch_load(path)
        state = obj
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError(f"{path}: expected a state dict of tensors (or a dict with 'state_dict' / 'model')")
        net = ResNet50ReID(num_classes=0, last_stride=last_stride)
        load_resnet50_weights(net, state, source=str(path))
        return cls(net, device=device, **kwargs)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs: Any) -> "ReIDEmbedder":
        """A project re-ID checkpoint (``stage: reid``) or, failing that, a user's ResNet-50 state dict."""
        path = Path(path)
        if path.is_dir():
            return cls.from_checkpoint(path, device, **kwargs)
        if not path.is_file():
            raise FileNotFoundError(f"re-ID weights not found: {path}")
        obj = _torch_load(path)
        if isinstance(obj, dict) and isinstance(obj.get("hyper_parameters"), dict):
            return cls.from_checkpoint(path, device, **kwargs)
        return cls.from_resnet50_weights(path, device, **kwargs)

    # -- inference ----------------------------------------------------------------------------------
    def crops(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 crops of ``boxes`` (see :func:`crop_persons`)."""
        return crop_persons(frame, boxes, self.input_size, self.padding)

    @torch.no_grad()
    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB crops -> (N, D) float32 L2-normalised embeddings."""
        crops = np.asarray(crops)
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        step = self.batch_size or n
        out = []
        for s in range(0, n, step):
            x = normalize_images(crops[s:s + step]).to(self.device).contiguous(memory_format=self._fmt)
            out.append(torch.nn.functional.normalize(self.net.embed(x).float(), dim=1).cpu())
        return torch.cat(out).numpy().astype(np.float32)

    def embed(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embeddings of the persons in ``boxes`` of one frame.

        frame: (H, W, 3) uint8 RGB. boxes: (N, 4) [x, y, w, h] in image pixels (N may be 0).
        Returns (N, D) float32, each row L2-normalised (cosine similarity = ``a @ b.T``). All crops go
        through one forward (``batch_size`` None)."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"ReIDEmbedder.embed: expected an (H, W, 3) uint8 RGB frame, got "
                             f"{frame.dtype} {frame.shape}")
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size and (boxes.ndim != 2 or boxes.shape[1] != 4):
            raise ValueError(f"ReIDEmbedder.embed: expected (N, 4) [x, y, w, h] boxes, got {boxes.shape}")
        return self.embed_crops(self.crops(frame, boxes.reshape(-1, 4)))


def reid_net(ck: Any, what: str | None = None) -> ReIDNet:
    """The re-ID net of a read ``reid`` checkpoint (``corrtrack.checkpoints.Checkpoint``) in eval mode,
    without its training classifier: kwargs from ``hyper_parameters["net"]``, weights from ``net.``."""
    from corrtrack import checkpoints

    kwargs = ck.hparams.get("net")
    if not isinstance(kwargs, dict) or "arch" not in kwargs:
        raise checkpoints.CheckpointError(f"{what + ': ' if what else ''}{ck.path}: hyper_parameters has no "
                                          f"re-ID 'net' kwargs (with 'arch')")
    try:
        net = build_reid_net(**kwargs)
    except (TypeError, ValueError) as e:
        raise checkpoints.CheckpointError(f"{what + ': ' if what else ''}{ck.path}: hyper_parameters['net'] "
                                          f"does not build a re-ID net ({e})") from None
    checkpoints.load_weights(net, ck, "net.", what)
    return net.drop_classifier().eval()


def _inference_args(hp: dict) -> dict[str, Any]:
    return {"input_size": tuple(int(v) for v in hp.get("input_size", DEFAULT_INPUT_SIZE)),
            "padding": float(hp.get("padding", DEFAULT_PADDING))}


def load_resnet50_weights(net: ResNet50ReID, state: dict[str, Tensor], source: str = "weights") -> dict:
    """Load a ResNet-50 state dict of any accepted layout into ``net`` (see
    :func:`corrtrack.nets.reid.convert_resnet50_state_dict`). Every trunk tensor must be present and
    of the right shape; a missing BNNeck (plain ImageNet weights) keeps the identity initialisation,
    a classifier of another size is skipped. Returns ``{"loaded", "missing", "unexpected"}``; raises
    ValueError naming ``source`` when trunk tensors are missing or mis-shaped."""
    conv = convert_resnet50_state_dict(state)
    own = net.state_dict()
    loaded = {k: v for k, v in conv.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    bad = sorted(k for k, v in conv.items() if k in own and tuple(v.shape) != tuple(own[k].shape)
                 and not k.startswith("neck.classifier."))
    missing_trunk = sorted(k for k in own if k.startswith("base.") and k not in loaded)
    if bad or missing_trunk:
        what = (f"shape mismatch: {bad[:3]}" if bad else
                f"{len(missing_trunk)} ResNet-50 trunk tensors missing, e.g. {missing_trunk[:3]}")
        raise ValueError(f"{source}: not a ResNet-50 re-ID state dict ({what}); accepted layouts: "
                         f"torchvision ResNet-50, base.*/bottleneck.* (re-ID strong baseline), "
                         f"backbone.*/heads.bottleneck.0.* (fast-reid)")
    net.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "missing": sorted(k for k in own if k not in loaded),
            "unexpected": sorted(k for k in conv if k not in own)}


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: one clear line
        raise ValueError(f"{path}: cannot read as a torch file ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------------------------------
# retrieval metrics
# --------------------------------------------------------------------------------------------------
def retrieval_metrics(dist: np.ndarray, query_ids: np.ndarray, gallery_ids: np.ndarray,
                      ignore: np.ndarray | None = None) -> dict[str, float]:
    """Rank-1 and mean average precision of a retrieval, the standard re-ID evaluation.

    dist: (Q, G) distances (smaller = more similar). query_ids (Q,), gallery_ids (G,): identity labels.
    ignore: optional (Q, G) bool, gallery entries that do not take part in query q's ranking (the query
    itself, the crops of its own frame). For each query the remaining gallery is sorted by distance
    (ties by gallery index); rank-1 = the first one shares the query's identity; AP = the mean over that
    identity's gallery entries of the precision at their ranks. Queries without any valid gallery
    entry of their identity are skipped (as in the Market-1501 protocol).

    Returns {"rank1", "map"} in [0, 1] and "num_queries" (the queries scored); NaN metrics when none is.
    """
    dist = np.asarray(dist, dtype=np.float64)
    q_ids, g_ids = np.asarray(query_ids), np.asarray(gallery_ids)
    if dist.shape != (len(q_ids), len(g_ids)):
        raise ValueError(f"retrieval_metrics: dist {dist.shape} vs {len(q_ids)} queries x {len(g_ids)} gallery")
    valid = np.ones(dist.shape, bool) if ignore is None else ~np.asarray(ignore, bool)
    order = np.argsort(np.where(valid, dist, np.inf), axis=1, kind="stable")
    match = (g_ids[order] == q_ids[:, None]) & np.take_along_axis(valid, order, axis=1)
    positives = match.sum(axis=1)
    scored = positives > 0
    if not scored.any():
        return {"rank1": float("nan"), "map": float("nan"), "num_queries": 0}
    match, positives = match[scored], positives[scored]
    rank1 = match[:, 0]
    hits = np.cumsum(match, axis=1, dtype=np.int32)
    ranks = np.arange(1, match.shape[1] + 1)
    ap = (match * hits / ranks).sum(axis=1) / positives    # ignored entries sort last and never match
    return {"rank1": float(rank1.mean()), "map": float(ap.mean()), "num_queries": int(scored.sum())}
