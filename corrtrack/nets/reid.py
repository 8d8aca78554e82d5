"""Person re-identification networks: a trunk, global average pooling and a BNNeck.

The recipe is the "strong baseline" of Luo et al. (CVPR-W 2019, "Bag of tricks and a strong baseline
for deep person re-identification"), which the CorrTrack paper's re-ID cue (§6.2) stands for:

```
crop (B, 3, H, W) -> trunk (last stride 1) -> global average pool -> f   (B, D)  features: triplet loss
f -> BatchNorm1d (no shift: bias frozen at 0)                  -> e   (B, D)  embeddings: inference
e -> Linear(D, num_classes, no bias)                           -> logits     identity (softmax) loss
```

The BNNeck puts the two losses on two sides of one BatchNorm: the triplet loss pulls and pushes ``f``
in Euclidean space, the classifier sees ``e``, whose per-channel normalisation suits a softmax over
identities; ``e`` (L2-normalised, cosine similarity) is what inference compares.

Two trunks:
- :class:`BNInceptionReID`: the project's own BN-Inception (``corrtrack.nets.bninception``), any
  ``width``, through layer ``last`` (21 = the whole body), its last stride-2 step removed (no dilation).
- :class:`ResNet50ReID`: torchvision's ResNet-50 (``weights=None``: nothing is downloaded), last stride 1,
  module names of the common re-ID code bases (``base.*``, ``bottleneck.*``, ``classifier.*``) so a
  user's own weights load from a local path (:func:`convert_resnet50_state_dict`).

Inputs are RGB crops normalised like every net here (``corrtrack.nets.utils.IMAGE_MEAN`` / ``STD``).
Plain ``nn.Module``s; :func:`build_reid_net` rebuilds one from the keyword arguments a checkpoint saves.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from corrtrack.nets.bninception import BNInception

ARCHS = ("bninception", "resnet50")


class BNNeck(nn.Module):
    """BatchNorm1d without a learnable shift, then a bias-free linear classifier (none when
    ``num_classes`` is 0, e.g. for inference-only nets).

    ``forward(f)``: f (B, D) pooled features -> (e (B, D) normalised embeddings, logits (B, C) or None).
    """

    def __init__(self, dim: int, num_classes: int = 0):
        super().__init__()
        self.bottleneck = nn.BatchNorm1d(dim)
        self.bottleneck.bias.requires_grad_(False)   # the "no shift" BN: bias stays 0
        nn.init.ones_(self.bottleneck.weight)
        nn.init.zeros_(self.bottleneck.bias)
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(dim, self.num_classes, bias=False) if self.num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, f: Tensor) -> tuple[Tensor, Tensor | None]:
        e = self.bottleneck(f)
        return e, (self.classifier(e) if self.classifier is not None else None)


class ReIDNet(nn.Module):
    """Shared part of the re-ID nets: subclasses set ``self.out_dim`` and implement ``trunk_forward``
    (B, 3, H, W) -> (B, D, h, w).

    ``forward(x)`` -> ``{"features": (B, D) before the BNNeck (triplet loss), "embeddings": (B, D) after
    it (inference), "logits": (B, C) or None (identity loss)}``. ``embed(x)`` -> the embeddings only
    (not L2-normalised; ``corrtrack.reid.ReIDEmbedder`` normalises).
    Attributes: ``kwargs`` (the constructor arguments, for checkpoints), ``out_dim`` (D), ``stride``.
    """

    kwargs: dict[str, Any]
    out_dim: int
    stride: int

    def _init_neck(self, num_classes: int) -> None:
        self.neck = BNNeck(self.out_dim, num_classes)

    def trunk_forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> dict[str, Tensor | None]:
        fmap = self.trunk_forward(x)
        f = fmap.mean(dim=(2, 3))
        e, logits = self.neck(f)
        return {"features": f, "embeddings": e, "logits": logits}

    def embed(self, x: Tensor) -> Tensor:
        return self.neck.bottleneck(self.trunk_forward(x).mean(dim=(2, 3)))

    @property
    def num_classes(self) -> int:
        return self.neck.num_classes

    def drop_classifier(self) -> "ReIDNet":
        """Remove the training classifier (inference needs only the embeddings); returns self."""
        self.neck.classifier = None
        self.neck.num_classes = 0
        self.kwargs["num_classes"] = 0
        return self


class BNInceptionReID(ReIDNet):
    """BN-Inception trunk (layers 1..``last``, ``width`` x the Caffe channel counts) + GAP + BNNeck.

    ``last_stride=1`` removes the trunk's last stride-2 step (for ``last`` >= 17: inception 4e), so a
    256x128 crop gives a 16x8 map instead of 8x4; unlike the pose trunks the layers after it are not
    dilated (as in the ResNet re-ID baseline). ``num_classes`` identities for the training classifier
    (0: none). Output dimension D = the trunk's channels (1024 x width for ``last=21``).
    """

    def __init__(self, num_classes: int = 0, width: float = 1.0, last: int = 21, last_stride: int = 1):
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"BNInceptionReID: last_stride must be 1 or 2 (got {last_stride})")
        self.kwargs = {"arch": "bninception", "num_classes": int(num_classes), "width": float(width),
                       "last": int(last), "last_stride": int(last_stride)}
        full = BNInception(1, last, width=width)
        keep = full.stride // 2 if last_stride == 1 and full.stride > 1 else None
        self.trunk = full if keep is None else BNInception(1, last, width=width, keep_stride=keep, dilate=False)
        self.out_dim = int(self.trunk.out_channels)
        self.stride = int(self.trunk.stride)
        self._init_neck(num_classes)

    def trunk_forward(self, x: Tensor) -> Tensor:
        return self.trunk(x)


class ResNet50ReID(ReIDNet):
    """torchvision ResNet-50 (built with ``weights=None``; never downloads) + GAP + BNNeck, the re-ID
    strong baseline. ``last_stride=1`` sets the stride of ``layer4`` to 1 (stride 16, 2048-d features).
    Parameter names ``base.*`` (the ResNet without ``fc``), ``neck.bottleneck.*``,
    ``neck.classifier.*``; :func:`convert_resnet50_state_dict` maps other code bases' names onto them."""

    def __init__(self, num_classes: int = 0, last_stride: int = 1):
        super().__init__()
        import torchvision

        if last_stride not in (1, 2):
            raise ValueError(f"ResNet50ReID: last_stride must be 1 or 2 (got {last_stride})")
        self.kwargs = {"arch": "resnet50", "num_classes": int(num_classes), "last_stride": int(last_stride)}
        base = torchvision.models.resnet50(weights=None)
        if last_stride == 1:
            block = base.layer4[0]
            block.conv2.stride = (1, 1)
            block.downsample[0].stride = (1, 1)
        del base.fc                       # the ImageNet classifier is not part of the re-ID net
        self.base = base
        self.out_dim = 2048
        self.stride = 16 if last_stride == 1 else 32
        self._init_neck(num_classes)

    def trunk_forward(self, x: Tensor) -> Tensor:
        b = self.base
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))


def build_reid_net(arch: str = "bninception", **kwargs: Any) -> ReIDNet:
    """A re-ID net from its saved keyword arguments (``net.kwargs``): ``arch`` in ``ARCHS``."""
    if arch == "bninception":
        return BNInceptionReID(**kwargs)
    if arch == "resnet50":
        return ResNet50ReID(**kwargs)
    raise ValueError(f"unknown re-ID architecture {arch!r}; expected one of {ARCHS}")


# Key prefixes of other code bases -> ours. Checked in order; the first that matches a key renames it.
_RESNET50_PREFIXES = (
    ("heads.bottleneck.0.", "neck.bottleneck."),   # fast-reid: backbone.* + heads.bottleneck.0.*
    ("heads.weight", "neck.classifier.weight"),
    ("backbone.", "base."),
    ("bottleneck.", "neck.bottleneck."),           # reid-strong-baseline: base.* + bottleneck.* + classifier.*
    ("classifier.", "neck.classifier."),
)
_TORCHVISION_TOP = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.", "fc.")


def convert_resnet50_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a ResNet-50 re-ID (or ImageNet) state dict to :class:`ResNet50ReID`'s names.

    Accepted layouts (a leading ``module.`` / ``model.`` / ``state_dict`` nesting is removed first):
    ours (``base.*``, ``neck.bottleneck.*``, ``neck.classifier.*``); the re-ID strong baseline's
    (``base.*``, ``bottleneck.*``, ``classifier.*``); fast-reid's (``backbone.*``,
    ``heads.bottleneck.0.*``); a plain torchvision ResNet-50 (``conv1.*`` ... ``layer4.*``; its ``fc``
    is dropped, the BNNeck then starts as the identity). Unknown keys are kept as they are (the loader
    reports them)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        k = key
        for lead in ("module.", "model."):
            if k.startswith(lead):
                k = k[len(lead):]
        if k.startswith(_TORCHVISION_TOP):
            if k.startswith("fc."):
                continue
            k = "base." + k
        else:
            for old, new in _RESNET50_PREFIXES:
                if k.startswith(old):
                    k = new + k[len(old):]
                    break
        out[k] = value
    return out
