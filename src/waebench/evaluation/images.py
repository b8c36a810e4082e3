"""Images made elsewhere, as uint8 [N, C, H, W]: a folder of PNG/JPEG files or an
`.npz` array (uint8, [N, H, W], [N, H, W, C] or [N, C, H, W], C in {1, 3})."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from waebench.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImagesError(UserError, ValueError):
    """`images=...` of waebench-eval is missing or cannot be read as images."""


def load_images(path: str | Path) -> torch.Tensor:
    path = Path(path)
    if not path.exists():
        raise ImagesError(
            f"images={path} does not exist; give a folder of PNG/JPEG files or an .npz"
        )
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImagesError(f"no {'/'.join(IMAGE_SUFFIXES)} files in {path}")
        arrays = [np.asarray(Image.open(f)) for f in files]
        if len({a.shape for a in arrays}) > 1:
            raise ImagesError(
                f"images in {path} differ in size: {sorted({a.shape for a in arrays})}"
            )
        return channels_first(np.stack(arrays), path)
    if path.suffix == ".npz":
        with np.load(path) as archive:
            key = "images" if "images" in archive else archive.files[0]
            return channels_first(archive[key], f"{path}[{key}]")
    raise ImagesError(f"images={path}: expected a folder of PNG/JPEG files or an .npz file")


def channels_first(array: np.ndarray, source) -> torch.Tensor:
    """[N, H, W] / [N, H, W, C] / [N, C, H, W] uint8 -> [N, C, H, W], dropping alpha."""
    if array.dtype != np.uint8:
        raise ImagesError(
            f"{source}: images must be uint8 in 0..255, got {array.dtype}; convert with "
            "(x * 255).round().clip(0, 255).astype(np.uint8) for floats in [0, 1]"
        )
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3):
        array = (
            array[..., :3].transpose(0, 3, 1, 2)
            if array.shape[-1] == 4
            else array.transpose(0, 3, 1, 2)
        )
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ImagesError(f"{source}: cannot read shape {array.shape} as [N, C, H, W], C in 1 or 3")
    return torch.from_numpy(np.ascontiguousarray(array))
