"""Top-down pose network of CorrTrack §6.1: two BN-GoogLeNet stages with intermediate supervision.

Stage 1 is BN-Inception layers 1-17 (stem through inception 4e) on the RGB crop; stage 2 is layers
3-17 (conv2 through inception 4e) on the stage-1 features. Each stage ends in a 1x1 head predicting,
per joint, a heatmap logit and a 2-D offset (``17 + 34`` channels).

Output stride. The strided BN-Inception body reaches stride 32 at 4e; a pose head wants a finer grid,
so both stages keep stride ``trunk_stride`` (default 8, as Rafi et al.'s BN-GoogLeNet pose net that
CorrTrack builds on): later stride-2 operations run at stride 1 and the layers after them are dilated
(``BNInception(keep_stride=...)``), so the receptive field of the strided net is preserved. Stage 2
runs entirely at that resolution (``keep_stride=1`` relative to its input). ``upsample`` optional
transposed convolutions (4x4, stride 2) in each head lower the output stride further (8 -> 4 -> 2).

Coordinate frame (shared with :mod:`corrtrack.pose`): output cell ``(i, j)`` of a stride-``s`` output is
centred on crop pixel ``(x, y) = (s * j, s * i)``; offsets are in units of output cells (``s`` crop pixels),
so the joint is at ``s * (j + dx), s * (i + dy)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from corrtrack.keypoints import NUM_JOINTS
from corrtrack.nets.bninception import BNInception
from corrtrack.nets.utils import count_flops, count_parameters  # noqa: F401  (re-exported)


class PoseHead(nn.Module):
    """Features -> (heatmap logits (B, J, h, w), offsets (B, J, 2, h, w)); ``upsample`` x2 deconvs first.

    ``lateral_channels`` (one per deconvolution, optional): channels of finer features added after each
    deconvolution (1x1 conv + BN, summed before the ReLU; FPN / U-Net style), at that deconvolution's
    output stride. ``convs`` 3x3 conv + BN + ReLU layers (``mid_channels``) follow at the output stride,
    before the 1x1 output layer."""

    def __init__(self, in_channels: int, num_joints: int, upsample: int = 0, mid_channels: int = 128,
                 lateral_channels: Sequence[int] = (), convs: int = 0):
        super().__init__()
        if lateral_channels and len(lateral_channels) != upsample:
            raise ValueError(f"PoseHead: {len(lateral_channels)} lateral inputs for {upsample} deconvolutions")
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(upsample):
            layers += [nn.ConvTranspose2d(c, mid_channels, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True)]
            c = mid_channels
        self.up = nn.Sequential(*layers)
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.Conv2d(lc, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels))
            for lc in lateral_channels)
        refine: list[nn.Module] = []
        for _ in range(convs):
            refine += [nn.Conv2d(c, mid_channels, 3, padding=1, bias=False), nn.BatchNorm2d(mid_channels),
                       nn.ReLU(inplace=True)]
            c = mid_channels
        self.refine = nn.Sequential(*refine)
        self.num_joints = num_joints
        self.out = nn.Conv2d(c, 3 * num_joints, 1)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)
        # Start heatmaps near the positive rate of a disk target so early BCE is not dominated by negatives.
        with torch.no_grad():
            self.out.bias[:num_joints].fill_(-4.0)

    def forward(self, x: Tensor, laterals: Sequence[Tensor] = ()) -> tuple[Tensor, Tensor]:
        if self.laterals:
            for i, lateral in enumerate(self.laterals):
                deconv, bn, relu = self.up[3 * i:3 * i + 3]
                f = laterals[i]
                y = bn(deconv(x))[..., :f.shape[-2], :f.shape[-1]]   # 2*ceil(n/2) may exceed n by one
                x = relu(y + lateral(f))
        else:
            x = self.up(x)
        y = self.out(self.refine(x))
        b, _, h, w = y.shape
        j = self.num_joints
        return y[:, :j], y[:, j:].reshape(b, j, 2, h, w)


class PoseNet(nn.Module):
    """Two-stage BN-GoogLeNet pose network (CorrTrack §6.1).

    Args:
        num_joints: heatmap / offset slots (17 for COCO and PoseTrack layouts).
        width: channel multiplier of both BN-Inception trunks (1.0 = the paper's; CPU presets 0.25).
        trunk_stride: stride kept by the trunks (8 by default; 16 is cheaper, 4 finer and dearer).
        upsample: number of x2 transposed-conv layers in each head
            (output stride = trunk_stride / 2**upsample).
        stage2_input: ``"features"`` (the paper: stage 2 sees the stage-1 trunk features) or
            ``"features+maps"`` (also the stage-1 heatmaps and offsets, CPM-style).
        head_channels: channels of the head's deconvolutions (unused when ``upsample == 0``).
        dilate: dilate the stage-1 layers after a removed stride (DeepLab-style: keeps the receptive
            fields of the strided net, so ImageNet weights stay meaningful).
        stage2_dilate: the same for stage 2, whose every stride is removed (dilations up to 8, i.e.
            mostly padding on small crops; off by default: its receptive field comes from depth).
        skip: an extension beyond the paper: each head deconvolution also receives the stage-1 features
            at its output stride (the last stage-1 block at that stride, e.g. inception 3b at 8 and
            conv2 at 4, through a 1x1 conv + BN), so a coarse trunk (``trunk_stride`` 16) still gives
            the heads fine spatial detail. Needs ``upsample`` > 0.
        head_convs: 3x3 conv + BN + ReLU layers (``head_channels`` wide) in each head at the output
            stride, before its 1x1 output layer (an extension; 0 = the paper's 1x1 head).

    ``forward(x)``: x (B, 3, H, W) normalised RGB crop, H and W divisible by the output stride ->
    ``{"heatmaps": [stage1, stage2] (B, J, H/s, W/s) logits,``
    `` "offsets": [stage1, stage2] (B, J, 2, H/s, W/s)}``
    (offsets ``[..., 0, :, :]`` = dx, ``[..., 1, :, :]`` = dy, in output cells).

    Attributes: ``stride`` (output stride in crop pixels), ``num_joints``, ``kwargs`` (the constructor
    arguments, for checkpoints).
    """

    def __init__(self, num_joints: int = NUM_JOINTS, width: float = 1.0, trunk_stride: int = 8, upsample: int = 0,
                 stage2_input: str = "features", head_channels: int = 128, dilate: bool = True,
                 stage2_dilate: bool = False, skip: bool = False, head_convs: int = 0):
        super().__init__()
        if stage2_input not in ("features", "features+maps"):
            raise ValueError(f"PoseNet: stage2_input must be 'features' or 'features+maps', "
                             f"got {stage2_input!r}")
        self.kwargs = dict(num_joints=num_joints, width=width, trunk_stride=trunk_stride, upsample=upsample,
                           stage2_input=stage2_input, head_channels=head_channels, dilate=dilate,
                           stage2_dilate=stage2_dilate)
        # extensions enter the kwargs only when on, so the kwargs (and checkpoints) of nets without them
        # stay as they were
        if skip:
            self.kwargs["skip"] = True
        if head_convs:
            self.kwargs["head_convs"] = int(head_convs)
        self.num_joints = num_joints
        self.stage2_input = stage2_input
        self.stage1 = BNInception(1, 17, width=width, keep_stride=trunk_stride, dilate=dilate)
        extra = 3 * num_joints if stage2_input == "features+maps" else 0
        self.stage2 = BNInception(3, 17, in_channels=self.stage1.out_channels + extra, width=width,
                                  keep_stride=1, dilate=stage2_dilate)
        if self.stage2.stride != 1:
            raise AssertionError("stage 2 must keep the stage-1 resolution")
        self.skip_names: list[str] = []
        if skip:
            if upsample < 1:
                raise ValueError("PoseNet: skip needs upsample >= 1 (the heads' deconvolutions take the skips)")
            strides = self.stage1.feature_strides
            for i in range(upsample):
                s = self.stage1.stride // 2 ** (i + 1)
                names = [n for n in strides if strides[n] == s]
                if not names:
                    raise ValueError(f"PoseNet: skip needs stage-1 features at stride {s} "
                                     f"(trunk stride {self.stage1.stride}, upsample {upsample})")
                self.skip_names.append(names[-1])
        lateral = [self.stage1.feature_channels[n] for n in self.skip_names]
        self.head1 = PoseHead(self.stage1.out_channels, num_joints, upsample, head_channels, lateral, head_convs)
        self.head2 = PoseHead(self.stage2.out_channels, num_joints, upsample, head_channels, lateral, head_convs)
        self.trunk_stride = self.stage1.stride
        self.stride = self.stage1.stride // (2 ** upsample)
        if self.stride < 1:
            raise ValueError(f"PoseNet: upsample={upsample} is too many for trunk stride {self.trunk_stride}")

    def forward(self, x: Tensor) -> dict[str, list[Tensor]]:
        lateral: list[Tensor] = []
        if self.skip_names:
            feats = self.stage1(x, return_features=True)
            f1 = feats["out"]
            lateral = [feats[n] for n in self.skip_names]
        else:
            f1 = self.stage1(x)
        h1, o1 = self.head1(f1, lateral)
        s2_in = f1
        if self.stage2_input == "features+maps":
            b, j, _, h, w = o1.shape
            maps = torch.cat([h1, o1.reshape(b, 2 * j, h, w)], dim=1)
            if maps.shape[-2:] != f1.shape[-2:]:
                maps = nn.functional.adaptive_avg_pool2d(maps, f1.shape[-2:])
            s2_in = torch.cat([f1, maps], dim=1)
        f2 = self.stage2(s2_in)
        h2, o2 = self.head2(f2, lateral)
        return {"heatmaps": [h1, h2], "offsets": [o1, o2]}
