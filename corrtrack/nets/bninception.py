"""Batch-normalised GoogLeNet (BN-Inception, Ioffe & Szegedy 2015), written from scratch, with a
configurable extent given in the paper's layer numbering.

Layer numbering
---------------
CorrTrack (and Rafi et al.'s earlier pose work it builds on) speaks of "a batch normalized GoogLeNet up
to layer 17" and "from layer 3 till layer 17". We read these numbers the way GoogLeNet itself counts its
depth (Szegedy et al. 2015, "22 layers deep when counting only layers with parameters"): every
convolution layer counts once, every inception module counts twice (it is two convolutions deep), and
pooling layers are not numbered. BN-Inception modules keep GoogLeNet's names; its extra module
``inception_3c`` is the strided "reduction" module that takes the place of GoogLeNet's max-pool between
3b and 4a (it even contains that max-pool as its pass-through branch), so like that pool it gets no
number. An unnumbered down-sampling stage belongs to the numbered layer it feeds.

====== ================================ ============= =============== ===========================
layer  blocks                           out channels  stride (input)  note
====== ================================ ============= =============== ===========================
1      conv1 (7x7/2)                    64            2
2      pool1 (3x3/2) + conv2_reduce     64            4               1x1
3      conv2 (3x3)                      192           4               "layer 3": refinement input
4-5    pool2 (3x3/2) + inception_3a     256           8
6-7    inception_3b                     320           8
8-9    inception_3c (/2) + inception_4a 576           16              3c = GoogLeNet's pool3
10-11  inception_4b                     576           16
12-13  inception_4c                     608           16
14-15  inception_4d                     608           16              release decoder skip
16-17  inception_4e (/2)                1056          32              "layer 17"
18-19  inception_5a                     1024          32
20-21  inception_5b                     1024          32              end of the body (22 = fc)
====== ================================ ============= =============== ===========================

So "layers 1-17" = the stem through inception 4e (stride 32), "layers 3-17" = everything from the 3x3
conv2 on (stride 8 relative to its own input, which then sits at the stride-4 resolution of conv2).
``first`` must start a numbered unit (1, 2, 3, 4, 6, ..., 20) and ``last`` must end one (1, 2, 3, 5, 7,
..., 21). Channel counts are those of the Caffe BN-Inception model (so a converted ImageNet state dict
loads, see :func:`convert_caffe_state_dict`); ``width`` scales all of them.

Keeping the stride
------------------
``keep_stride=s`` caps the total stride at ``s``: every later stride-2 operation runs with stride 1 and
all following 3x3 convolutions/max-pools are dilated by the factor the stride would have grown
(DeepLab-style), so receptive fields and weights stay those of the strided network. Cost grows with the
square of the resolution kept (see docs/networks.md).

Coordinate frames: every stride-2 operation is centred (3x3/2 with padding 1, 7x7/2 with padding 3), so
feature cell ``i`` of a stride-``s`` output is centred on input pixel ``s * i``: ``x_feat = x_in / s``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# (name, kind, spec). Inception spec: (1x1, 3x3_reduce, 3x3, double_reduce, double_1, double_2,
# pool kind, pool_proj); a reduction module has 1x1 = 0 and pool_proj = 0 (max-pool pass-through)
# and strides its 3x3 convs and pool by 2.
_INCEPTION = {
    "inception_3a": (64, 64, 64, 64, 96, 96, "avg", 32),
    "inception_3b": (64, 64, 96, 64, 96, 96, "avg", 64),
    "inception_3c": (0, 128, 160, 64, 96, 96, "max", 0),
    "inception_4a": (224, 64, 96, 96, 128, 128, "avg", 128),
    "inception_4b": (192, 96, 128, 96, 128, 128, "avg", 128),
    "inception_4c": (160, 128, 160, 128, 160, 160, "avg", 128),
    "inception_4d": (96, 128, 192, 160, 192, 192, "avg", 128),
    "inception_4e": (0, 128, 192, 192, 256, 256, "max", 0),
    "inception_5a": (352, 192, 320, 160, 224, 224, "avg", 128),
    "inception_5b": (352, 192, 320, 192, 224, 224, "max", 128),
}

# numbered unit -> (first layer number, last layer number, blocks in order)
UNITS: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (1, 1, ("conv1",)),
    (2, 2, ("pool1", "conv2_reduce")),
    (3, 3, ("conv2",)),
    (4, 5, ("pool2", "inception_3a")),
    (6, 7, ("inception_3b",)),
    (8, 9, ("inception_3c", "inception_4a")),
    (10, 11, ("inception_4b",)),
    (12, 13, ("inception_4c",)),
    (14, 15, ("inception_4d",)),
    (16, 17, ("inception_4e",)),
    (18, 19, ("inception_5a",)),
    (20, 21, ("inception_5b",)),
)
FIRST_LAYERS = tuple(u[0] for u in UNITS)
LAST_LAYERS = tuple(u[1] for u in UNITS)
# Named outputs available with ``return_features=True`` (pools are folded into the next block).
FEATURE_NAMES = ("conv1", "conv2_reduce", "conv2") + tuple(_INCEPTION)


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels`` scaled by ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))


class ConvBNReLU(nn.Sequential):
    """Conv (with bias, as in the Caffe model) -> BatchNorm -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1):
        pad = dilation * (kernel - 1) // 2
        super().__init__(OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, dilation=dilation, bias=True),
            bn=nn.BatchNorm2d(cout),
            relu=nn.ReLU(inplace=True),
        ))


class MaxPool3x3(nn.Module):
    """3x3 max-pool, centred ("same" padding of ``dilation``), optionally dilated. nn.MaxPool2d refuses a
    padding larger than half the kernel, so dilated pools pad with -inf themselves."""

    def __init__(self, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.stride, self.dilation = stride, dilation

    def forward(self, x: Tensor) -> Tensor:
        d = self.dilation
        if d == 1:
            return F.max_pool2d(x, 3, stride=self.stride, padding=1)
        x = F.pad(x, (d, d, d, d), value=float("-inf"))
        return F.max_pool2d(x, 3, stride=self.stride, dilation=d)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, dilation={self.dilation}"


def _max_pool(stride: int, dilation: int) -> MaxPool3x3:
    return MaxPool3x3(stride, dilation)


class Inception(nn.Module):
    """One BN-Inception module: 1x1 | 1x1->3x3 | 1x1->3x3->3x3 | pool(->1x1), concatenated.

    A reduction module (``reduce=True``) has no 1x1 branch, strides its last 3x3 convs and its max-pool
    (pass-through, no projection) by ``stride`` (2, or 1 when the trunk keeps its stride).
    ``dilation`` dilates every 3x3 conv and the max-pool (used after an earlier stride was removed).
    """

    def __init__(self, cin: int, spec: tuple, width: float, stride: int = 1, dilation: int = 1):
        super().__init__()
        c1, c3r, c3, cdr, cd1, cd2, pool, cproj = spec
        s = lambda c: scaled(c, width)  # noqa: E731
        self.reduce = c1 == 0
        out = 0
        if not self.reduce:
            self.add_module("1x1", ConvBNReLU(cin, s(c1), 1))
            out += s(c1)
        self.add_module("3x3_reduce", ConvBNReLU(cin, s(c3r), 1))
        self.add_module("3x3", ConvBNReLU(s(c3r), s(c3), 3, stride=stride, dilation=dilation))
        self.add_module("double_3x3_reduce", ConvBNReLU(cin, s(cdr), 1))
        self.add_module("double_3x3_1", ConvBNReLU(s(cdr), s(cd1), 3, dilation=dilation))
        self.add_module("double_3x3_2", ConvBNReLU(s(cd1), s(cd2), 3, stride=stride, dilation=dilation))
        out += s(c3) + s(cd2)
        if self.reduce:
            self.pool = _max_pool(stride, dilation)
            out += cin
        else:
            self.pool = (nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True) if pool == "avg"
                         else _max_pool(1, 1))
            self.add_module("pool_proj", ConvBNReLU(cin, s(cproj), 1))
            out += s(cproj)
        self.out_channels = out

    def forward(self, x: Tensor) -> Tensor:
        m = self._modules
        branches = []
        if not self.reduce:
            branches.append(m["1x1"](x))
        branches.append(m["3x3"](m["3x3_reduce"](x)))
        branches.append(m["double_3x3_2"](m["double_3x3_1"](m["double_3x3_reduce"](x))))
        p = self.pool(x)
        branches.append(p if self.reduce else m["pool_proj"](p))
        return torch.cat(branches, dim=1)


def _block_stride(name: str) -> int:
    return 2 if name in ("conv1", "pool1", "pool2", "inception_3c", "inception_4e") else 1


class BNInception(nn.Module):
    """BN-Inception trunk covering layers ``first``..``last`` of the numbering in the module docstring.

    Args:
        first: first layer (1, 2, 3, 4, 6, ..., 20); 1 = from the RGB image.
        last: last layer (1, 2, 3, 5, 7, ..., 21); 17 = through inception 4e, 21 = whole body.
        in_channels: input channels; default 3 when ``first == 1``, else what layer ``first - 1``
            produces (any value is accepted, e.g. 81 for the refinement body).
        width: multiplies every channel count (CPU presets: 0.25).
        keep_stride: cap on the total stride; later stride-2 ops run with stride 1 and dilate what
            follows (None = the normal strides).
        dilate: with ``keep_stride``, dilate the layers after a removed stride (default) or not.

    Attributes:
        out_channels: channels of the output.
        stride: total stride from the input to the output.
        feature_channels / feature_strides: per named block output (see ``FEATURE_NAMES``) that this
            trunk contains.

    ``forward(x)``: x (B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride)).
    ``forward(x, return_features=True)`` -> dict of every block output by name (e.g. "inception_4d")
    plus "out" (the output).
    """

    def __init__(self, first: int = 1, last: int = 17, in_channels: int | None = None,
                 width: float = 1.0, keep_stride: int | None = None, dilate: bool = True):
        super().__init__()
        if first not in FIRST_LAYERS:
            raise ValueError(f"BNInception: first={first} does not start a numbered layer; "
                             f"choose one of {FIRST_LAYERS}")
        if last not in LAST_LAYERS:
            raise ValueError(f"BNInception: last={last} does not end a numbered layer; "
                             f"choose one of {LAST_LAYERS}")
        if last < first:
            raise ValueError(f"BNInception: last={last} < first={first}")
        if width <= 0:
            raise ValueError(f"BNInception: width must be > 0 (got {width})")
        if keep_stride is not None and (keep_stride < 1 or keep_stride & (keep_stride - 1)):
            raise ValueError(f"BNInception: keep_stride must be a power of two >= 1 (got {keep_stride})")
        self.first, self.last, self.width, self.keep_stride = first, last, float(width), keep_stride

        blocks = [b for f, l, names in UNITS if first <= f and l <= last for b in names]
        if in_channels is None:
            in_channels = 3 if first == 1 else _default_channels(first, width)
        self.in_channels = int(in_channels)

        self.blocks = nn.ModuleDict()
        self.feature_channels: dict[str, int] = {}
        self.feature_strides: dict[str, int] = {}
        c, stride, dil = self.in_channels, 1, 1
        for name in blocks:
            s = _block_stride(name)
            d_in = dil
            if keep_stride is not None and stride * s > keep_stride:
                # the op keeps the resolution; what follows is dilated as if it had been strided
                s, dil = 1, (dil * s if dilate else dil)
            if name in ("pool1", "pool2"):
                self.blocks[name] = _max_pool(s, d_in)
            elif name == "conv1":
                self.blocks[name] = ConvBNReLU(c, scaled(64, width), 7, stride=s, dilation=d_in)
                c = scaled(64, width)
            elif name == "conv2_reduce":
                self.blocks[name] = ConvBNReLU(c, scaled(64, width), 1)
                c = scaled(64, width)
            elif name == "conv2":
                self.blocks[name] = ConvBNReLU(c, scaled(192, width), 3, dilation=d_in)
                c = scaled(192, width)
            else:
                # inside a module everything runs at the incoming dilation; the ops that were strided
                # (its last 3x3s and its max-pool) sample like their strided originals did
                mod = Inception(c, _INCEPTION[name], width, stride=s, dilation=d_in)
                self.blocks[name] = mod
                c = mod.out_channels
            stride *= s
            if name not in ("pool1", "pool2"):
                self.feature_channels[name] = c
                self.feature_strides[name] = stride
        self.out_channels: int = c
        self.stride: int = stride
        self.out_dilation: int = dil     # dilation a 3x3 conv appended after the trunk should use

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | dict[str, Tensor]:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"BNInception(first={self.first}) expects {self.in_channels} input channels, "
                             f"got a tensor of shape {tuple(x.shape)}")
        feats: dict[str, Tensor] = {}
        for name, block in self.blocks.items():
            x = block(x)
            if return_features and name in self.feature_channels:
                feats[name] = x
        if return_features:
            feats["out"] = x
            return feats
        return x


def _default_channels(first: int, width: float) -> int:
    """Channels produced by layer ``first - 1`` of a full-width-scaled trunk."""
    probe = BNInception(1, first - 1, width=width)
    return probe.out_channels


def convert_caffe_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a Caffe-converted BN-Inception state dict (names like ``inception_3a_1x1.weight``,
    ``inception_3a_1x1_bn.running_mean``, ``conv1_7x7_s2.weight``; the common ImageNet port) to this
    module's names (``blocks.inception_3a.1x1.conv.weight``, ...). Keys it does not know (the
    classifier) are dropped. Only for local files: nothing here downloads weights."""
    stem = {"conv1_7x7_s2": "blocks.conv1", "conv2_3x3_reduce": "blocks.conv2_reduce",
            "conv2_3x3": "blocks.conv2"}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        base, _, param = key.rpartition(".")
        bn = base.endswith("_bn")
        if bn:
            base = base[:-3]
        if base in stem:
            prefix = stem[base]
        else:
            name = "_".join(base.split("_")[:2])
            if name not in _INCEPTION:
                continue
            branch = base[len(name) + 1:]
            prefix = f"blocks.{name}.{branch}"
        if value.dim() > 1 and value.shape[0] == 1 and param != "weight":
            value = value.squeeze(0)
        out[f"{prefix}.{'bn' if bn else 'conv'}.{param}"] = value
    return out
