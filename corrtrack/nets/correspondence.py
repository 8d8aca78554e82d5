"""The keypoint correspondence networks of CorrTrack (paper §4.1, §4.2; docs/method.md §1): the Siamese matching module and
the refinement module, as plain nn.Modules. Descriptors, affinities and propagation live in
``corrtrack.correspondence``.

Feature coordinates: both variants of :class:`SiameseNet` have stride 4 and cell ``i`` centred on input
pixel ``4 * i`` (``x_feat = x_in / 4``, see ``corrtrack.correspondence.to_feature_coords``).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from corrtrack.keypoints import NUM_JOINTS
from corrtrack.nets.bninception import BNInception, ConvBNReLU, scaled

SiameseVariant = Literal["paper", "release"]
RefinementVariant = Literal["decoder", "dilated"]


def normalize_features(f: Tensor, mode: str = "l2", eps: float = 1e-6) -> Tensor:
    """Per-pixel normalisation of (B, C, h, w) features: ``"l2"`` divides by the L2 norm over C (paper),
    ``"squared"`` by the squared norm (the release), ``"none"`` leaves them."""
    if mode == "none":
        return f
    sq = (f * f).sum(dim=1, keepdim=True)
    if mode == "l2":
        return f / torch.sqrt(sq + eps)
    if mode == "squared":
        return f / (sq + eps)
    raise ValueError(f"normalize must be 'l2', 'squared' or 'none' (got {mode!r})")


# how descriptors are sampled from F1 (corrtrack.correspondence.extract_descriptors)
DESCRIPTOR_SAMPLING = ("nearest", "bilinear")


class SiameseNet(nn.Module):
    """Shared BN-Inception backbone giving per-pixel normalised features at stride 4.

    Variants (docs/method.md §1; measured cost in docs/networks.md):
      - ``"paper"``: layers 1-17 (through inception 4e) with ``keep_stride=4`` (pool2, 3c and 4e run at
        stride 1, later layers dilated 2/4/8), then a 1x1 conv to ``feat_channels``.
      - ``"release"``: the whole body (layers 1-21, to inception 5b, stride 32), then a decoder:
        ConvTranspose(2x2, s2) + BN + ReLU -> concat inception 4d (stride 16) -> ConvTranspose(8x8, s4,
        p2) to ``feat_channels`` (stride 4).

    ``forward(x)``: x (B, 3, H, W) normalised RGB, H and W divisible by 32 -> (B, feat_channels, H/4, W/4)
    normalised per pixel (``normalize``: "l2" | "squared" | "none"). ``descriptor`` ("nearest" |
    "bilinear") is how the matching samples descriptors from these features; it travels with the net
    (and its checkpoints) so training and inference agree.
    """

    stride: int = 4

    def __init__(self, variant: SiameseVariant = "paper", width: float = 1.0, feat_channels: int = 32,
                 normalize: str = "l2", decoder_channels: int = 256, descriptor: str = "nearest"):
        super().__init__()
        if descriptor not in DESCRIPTOR_SAMPLING:
            raise ValueError(f"SiameseNet descriptor must be one of {DESCRIPTOR_SAMPLING} (got {descriptor!r})")
        self.descriptor = descriptor  # how descriptors are sampled (corrtrack.correspondence.extract_descriptors)
        if variant not in ("paper", "release"):
            raise ValueError(f"SiameseNet variant must be 'paper' or 'release' (got {variant!r})")
        normalize_features(torch.zeros(1, 1, 1, 1), normalize)  # validates the mode
        self.variant, self.width, self.feat_channels, self.normalize = variant, width, feat_channels, normalize
        self.decoder_channels = decoder_channels
        if variant == "paper":
            self.backbone = BNInception(1, 17, width=width, keep_stride=4)
            self.head = nn.Conv2d(self.backbone.out_channels, feat_channels, 1)
        else:
            self.backbone = BNInception(1, 21, width=width)
            dec = scaled(decoder_channels, width)
            self.up1 = nn.Sequential(
                nn.ConvTranspose2d(self.backbone.out_channels, dec, 2, stride=2, bias=False),
                nn.BatchNorm2d(dec), nn.ReLU(inplace=True))
            skip = self.backbone.feature_channels["inception_4d"]
            self.up2 = nn.ConvTranspose2d(dec + skip, feat_channels, 8, stride=4, padding=2)

    def config(self) -> dict:
        """Constructor kwargs (what LightningModules save under ``hparams["net"]["siamese"]``)."""
        return {"variant": self.variant, "width": self.width, "feat_channels": self.feat_channels,
                "normalize": self.normalize, "decoder_channels": self.decoder_channels,
                "descriptor": self.descriptor}

    def raw_features(self, x: Tensor) -> Tensor:
        """Features before normalisation, (B, feat_channels, H/4, W/4)."""
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"SiameseNet needs an input divisible by 32, got {tuple(x.shape)}")
        if self.variant == "paper":
            return self.head(self.backbone(x))
        feats = self.backbone(x, return_features=True)
        y = self.up1(feats["out"])
        return self.up2(torch.cat([y, feats["inception_4d"]], dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return normalize_features(self.raw_features(x), self.normalize)

    def forward_pair(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        """Both images of a pair in one batch (shared weights, one BN batch): -> (F1, F2)."""
        f = self(torch.cat([x1, x2], dim=0))
        return f[: x1.shape[0]], f[x1.shape[0]:]


class RefinementNet(nn.Module):
    """Refines the Siamese affinity maps of one person: concat(F1, F2, S^p) -> logits C^p (paper §4.2).

    The body is BN-Inception layers 3-17 (conv2 through inception 4e) taking ``in_channels`` (= 2 x 32
    features + 17 maps = 81) at the feature resolution (64x64 for a 256x256 pair). The output keeps that
    resolution; two ways (``variant``):
      - ``"decoder"`` (default): the body runs with its normal strides (8 relative to its input) and a
        light U-Net decoder climbs back: 2x upsampling steps (ConvTranspose 2x2/2 + BN + ReLU, then a 3x3
        conv + BN + ReLU over the concatenation) fused with
        the body's inception 4d (/4), inception 3b (/2) and conv2 (/1) outputs; the input maps S are
        concatenated again before the last 1x1 conv so a peak can be kept at its exact cell.
      - ``"dilated"``: ``keep_stride=1``: pool2, 3c and 4e run at stride 1 and later layers are dilated
        (2, 4, 8); the body's output goes through a 1x1 conv. About 10x the MACs of "decoder".

    ``forward(F1, F2, S)`` with F1, F2 (B, C, h, w) and S (B, P, J, h, w) -> logits (B, P, J, h, w); all
    persons of a batch go through one forward (F1/F2 are repeated per person).
    ``forward(F1, F2, S, batch_index)`` with S (N, J, h, w) and batch_index (N,) long (the image of each
    person) -> (N, J, h, w): for a ragged number of persons per image.
    Apply a sigmoid for probabilities (the loss is BCE-with-logits). ``residual``: add log S to the
    logits (head initialised to zero), so training starts from the Siamese maps.
    """

    def __init__(self, width: float = 1.0, in_channels: int = 2 * 32 + NUM_JOINTS, num_joints: int = NUM_JOINTS,
                 variant: RefinementVariant = "decoder", decoder_channels: int = 128,
                 peak_normalize: bool = True, residual: bool = False):
        super().__init__()
        # residual: the logits are head(...) + log S, with the head starting at zero, so the untrained
        # refinement returns sigmoid(log S) = S / (1 + S): the Siamese answer (same argmax) that training
        # then corrects, instead of a random map that first has to re-learn what S already knows.
        self.residual = residual
        # Softmax maps over 64x64 cells peak around 1/100 even when confident: dividing each map by its
        # maximum (peak_normalize) hands the body a peak of 1 to follow; all-zero maps stay zero.
        self.peak_normalize = peak_normalize
        if variant not in ("decoder", "dilated"):
            raise ValueError(f"RefinementNet variant must be 'decoder' or 'dilated' (got {variant!r})")
        if in_channels <= num_joints:
            raise ValueError(f"RefinementNet: in_channels={in_channels} must exceed num_joints={num_joints}")
        self.width, self.in_channels, self.num_joints = width, in_channels, num_joints
        self.variant, self.decoder_channels = variant, decoder_channels
        if variant == "dilated":
            self.body = BNInception(3, 17, in_channels=in_channels, width=width, keep_stride=1)
            self.head = nn.Conv2d(self.body.out_channels + num_joints, num_joints, 1)
        else:
            self.body = BNInception(3, 17, in_channels=in_channels, width=width)
            ch = self.body.feature_channels
            d = scaled(decoder_channels, width)
            self.skips = ("inception_4d", "inception_3b", "conv2")
            cin = self.body.out_channels
            ups, fuses = [], []
            for s in self.skips:
                ups.append(nn.Sequential(nn.ConvTranspose2d(cin, d, 2, stride=2, bias=False),
                                         nn.BatchNorm2d(d), nn.ReLU(inplace=True)))
                fuses.append(ConvBNReLU(d + ch[s], d, 3))
                cin = d
            self.ups, self.fuses = nn.ModuleList(ups), nn.ModuleList(fuses)
            self.head = nn.Conv2d(d + num_joints, num_joints, 1)
        if residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def config(self) -> dict:
        """Constructor kwargs (saved under ``hparams["net"]["refinement"]``)."""
        return {"width": self.width, "in_channels": self.in_channels, "num_joints": self.num_joints,
                "variant": self.variant, "decoder_channels": self.decoder_channels,
                "peak_normalize": self.peak_normalize, "residual": self.residual}

    def refine(self, x: Tensor) -> Tensor:
        """x (N, in_channels, h, w) = concat(F1, F2, S) with S the last ``num_joints`` channels ->
        logits (N, num_joints, h, w). h, w divisible by 8."""
        s = s_in = x[:, -self.num_joints:]
        if self.peak_normalize:
            s = s / s.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
            x = torch.cat([x[:, :-self.num_joints], s], dim=1)
        if self.variant == "dilated":
            y = self.body(x)
        else:
            if x.shape[-1] % 8 or x.shape[-2] % 8:
                raise ValueError(f"RefinementNet('decoder') needs h, w divisible by 8, got {tuple(x.shape)}")
            feats = self.body(x, return_features=True)
            y = feats["out"]
            for up, fuse, name in zip(self.ups, self.fuses, self.skips):
                y = fuse(torch.cat([up(y), feats[name]], dim=1))
        out = self.head(torch.cat([y, s], dim=1))
        return out + torch.log(s_in.clamp_min(1e-12)) if self.residual else out

    def forward(self, f1: Tensor, f2: Tensor, s: Tensor, batch_index: Tensor | None = None) -> Tensor:
        if s.dim() == 5:
            b, p, j, h, w = s.shape
            if p == 0:
                return s.new_zeros((b, 0, j, h, w))
            x = torch.cat([f1[:, None].expand(-1, p, -1, -1, -1), f2[:, None].expand(-1, p, -1, -1, -1), s],
                          dim=2).reshape(b * p, -1, h, w)
            return self.refine(x).reshape(b, p, j, h, w)
        if s.dim() == 4:
            if batch_index is None:
                if f1.shape[0] != s.shape[0]:
                    raise ValueError("RefinementNet: S of shape (N, J, h, w) needs batch_index when N != B")
                batch_index = torch.arange(s.shape[0], device=s.device)
            if s.shape[0] == 0:
                return s.new_zeros(s.shape)
            return self.refine(torch.cat([f1[batch_index], f2[batch_index], s], dim=1))
        raise ValueError(f"RefinementNet: S must be (B, P, J, h, w) or (N, J, h, w), got {tuple(s.shape)}")


def build_siamese(cfg: dict | None) -> SiameseNet:
    """SiameseNet from a kwargs dict (e.g. ``hparams["net"]["siamese"]``)."""
    return SiameseNet(**dict(cfg or {}))


def build_refinement(cfg: dict | None) -> RefinementNet:
    """RefinementNet from a kwargs dict (e.g. ``hparams["net"]["refinement"]``)."""
    return RefinementNet(**dict(cfg or {}))
