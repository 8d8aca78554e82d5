"""Image files: read as RGB uint8, the one reader of every dataset, benchmark, preview and tracker path."""
from __future__ import annotations

import os

import numpy as np


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (any format OpenCV decodes; grey and alpha become RGB).

    Raises FileNotFoundError when the file does not exist and OSError when it cannot be decoded, each
    with one line naming the file."""
    import cv2

    path = os.fspath(path)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: image file not found")
        raise OSError(f"{path}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only. Errors as :func:`read_rgb`."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError):
        raise OSError(f"{path}: cannot decode image (corrupt or not an image)") from None


__all__ = ["read_rgb", "image_size"]
