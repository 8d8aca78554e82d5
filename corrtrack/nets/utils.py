"""Small network utilities: parameter and FLOP counting, loading local pretrained weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

# Input normalisation of every network here: RGB / 255, then ImageNet mean / std (albumentations'
# ``Normalize()`` defaults, so pretrained ImageNet weights see the statistics they were trained on).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
_MEAN32, _STD32 = np.array(IMAGE_MEAN, dtype=np.float32), np.array(IMAGE_STD, dtype=np.float32)


def normalize_images(images: np.ndarray) -> Tensor:
    """uint8 RGB images (..., H, W, 3) -> network input (..., 3, H, W) float32: RGB / 255, minus
    IMAGE_MEAN, over IMAGE_STD (computed in float32)."""
    a = np.asarray(images)
    if a.ndim < 3 or a.shape[-1] != 3:
        raise ValueError(f"expected RGB images of shape (..., H, W, 3), got shape {a.shape}")
    x = (a.astype(np.float32) / np.float32(255.0) - _MEAN32) / _STD32
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, -3)))


def denormalize_images(x: Tensor) -> np.ndarray:
    """Inverse of :func:`normalize_images` (for pictures): (..., 3, H, W) -> (..., H, W, 3) uint8 RGB,
    rounded to the nearest value and clipped to [0, 255]."""
    a = np.moveaxis(x.detach().cpu().float().numpy(), -3, -1)
    return np.clip((a * _STD32 + _MEAN32) * np.float32(255.0) + np.float32(0.5), 0, 255).astype(np.uint8)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_flops(module: nn.Module, input_shape: tuple[int, ...] | list[tuple[int, ...]],
                *args, **kwargs) -> int:
    """Multiply-accumulates (MACs) of one forward pass, counted by forward hooks on Conv2d,
    ConvTranspose2d and Linear layers (BatchNorm, ReLU, pooling and correlation are not counted).

    ``input_shape`` is the full shape including the batch, e.g. (1, 3, 256, 256); a list of shapes
    passes several random inputs. Extra ``args``/``kwargs`` go to ``forward``. Runs in eval mode
    under ``torch.no_grad`` on the module's device and restores the training flag.
    """
    macs = 0

    def conv_hook(m: nn.Conv2d, inp, out: Tensor) -> None:
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs += out.numel() * k

    def deconv_hook(m: nn.ConvTranspose2d, inp, out: Tensor) -> None:
        nonlocal macs
        x = inp[0]
        macs += x.numel() * m.kernel_size[0] * m.kernel_size[1] * (m.out_channels // m.groups)

    def linear_hook(m: nn.Linear, inp, out: Tensor) -> None:
        nonlocal macs
        macs += out.numel() * m.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(deconv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    shapes = input_shape if isinstance(input_shape, list) else [input_shape]
    try:
        p = next(module.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    except StopIteration:  # pragma: no cover
        device = torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(*[torch.randn(*s, device=device) for s in shapes], *args, **kwargs)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return int(macs)


def load_pretrained(module: nn.Module, path: str | Path, prefix: str = "",
                    convert: bool = True) -> dict[str, list[str]]:
    """Load a local state dict into ``module`` with non-strict matching; never downloads.

    ``path``: a ``.pth``/``.pt`` state dict, or a Lightning ``.ckpt`` (its ``state_dict`` is used).
    ``prefix``: keep only keys starting with it and strip it (e.g. ``"siamese.backbone."``).
    ``convert``: also try the Caffe BN-Inception key names (``inception_3a_1x1.weight``...) when few keys
    match directly. Tensors whose shape differs from the module's are skipped, not an error.

    Returns ``{"loaded": [...], "missing": [...], "unexpected": [...], "shape_mismatch": [...]}``.
    Raises FileNotFoundError naming the path when it does not exist.
    """
    from corrtrack.nets.bninception import convert_caffe_state_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=False)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (or a checkpoint with 'state_dict'), "
                         f"got {type(state).__name__}")
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = module.state_dict()

    def matches(sd: dict) -> int:
        return sum(1 for k in sd if k in own)

    if convert:
        # try the Caffe names at the top level and under every BNInception inside ``module``
        candidates = [state]
        conv = convert_caffe_state_dict(state)
        if conv:
            candidates.append(conv)
            trunk_prefixes = {k[: k.index("blocks.")] for k in own if "blocks." in k}
            candidates += [{p + k: v for k, v in conv.items()} for p in trunk_prefixes if p]
        state = max(candidates, key=matches)
    loaded, mismatch = {}, []
    for k, v in state.items():
        if k in own:
            if tuple(own[k].shape) == tuple(v.shape):
                loaded[k] = v
            else:
                mismatch.append(k)
    module.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "missing": sorted(k for k in own if k not in loaded),
            "unexpected": sorted(k for k in state if k not in own), "shape_mismatch": sorted(mismatch)}
