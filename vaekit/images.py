"""Image grids: uint8 (N, C, H, W) arrays to one PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def make_grid(
    images: np.ndarray, ncol: int | None = None, pad: int = 2, scale: int = 1
) -> np.ndarray:
    """Tile (N, C, H, W) uint8 images into one (H', W', C) array with ``pad`` pixels between.

    ``ncol`` defaults to a near-square layout; ``scale`` enlarges pixels (nearest).
    """
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {images.shape}")
    n, c, h, w = images.shape
    ncol = ncol or max(1, math.ceil(math.sqrt(n)))
    nrow = max(1, math.ceil(n / ncol))
    grid = np.full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i]
    grid = grid.transpose(1, 2, 0)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def to_uint8(images) -> np.ndarray:
    """Float images in [0, 1] (tensor or array, (N, C, H, W)) to uint8."""
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def save_grid(
    images: np.ndarray, path: str | Path, ncol: int | None = None, scale: int | None = None
) -> Path:
    """Write a PNG grid of uint8 (N, C, H, W) images atomically; small images are enlarged."""
    from PIL import Image

    from vaekit.runs import atomic_path

    if scale is None:
        scale = max(1, 64 // max(images.shape[2:]))
    grid = make_grid(images, ncol=ncol, scale=scale)
    mode = "L" if grid.shape[2] == 1 else "RGB"
    picture = Image.fromarray(grid[:, :, 0] if mode == "L" else grid[:, :, :3], mode=mode)
    path = Path(path)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return path
