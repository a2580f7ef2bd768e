"""Image grids: uint8 (N, C, H, W) arrays to one PNG."""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

#: Height in pixels of the band of column titles above a titled grid.
TITLE_BAND = 16


def make_grid(
    images: np.ndarray, ncol: int | None = None, pad: int = 2, scale: int = 1, group: int = 1
) -> np.ndarray:
    """Tile (N, C, H, W) uint8 images into one (H', W', C) array with ``pad`` pixels between.

    ``ncol`` defaults to a near-square layout; ``scale`` enlarges pixels (nearest);
    ``group`` > 1 leaves a wider gap after every ``group`` columns (pairs of an original
    and its reconstruction read as pairs).
    """
    if images.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {images.shape}")
    n, c, h, w = images.shape
    ncol = min(ncol or max(1, math.ceil(math.sqrt(n))), max(n, 1))  # no empty columns
    nrow = max(1, math.ceil(n / ncol))
    gap = 2 * pad if group > 1 else 0
    lefts = [pad + col * (w + pad) + (col // group) * gap for col in range(ncol)]
    width = lefts[-1] + w + pad
    grid = np.full((c, nrow * (h + pad) + pad, width), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = pad + r * (h + pad), lefts[col]
        grid[:, top : top + h, left : left + w] = images[i]
    grid = grid.transpose(1, 2, 0)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def column_centres(n_columns: int, w: int, pad: int = 2, scale: int = 1, group: int = 1) -> list:
    """The x centre of each column of a :func:`make_grid` grid (after ``scale``)."""
    gap = 2 * pad if group > 1 else 0
    return [
        (pad + col * (w + pad) + (col // group) * gap + w / 2) * scale for col in range(n_columns)
    ]


#: Characters Pillow's built-in font draws as a box, and what a title writes instead.
PLAIN_CHARACTERS = str.maketrans({"×": "x", "−": "-", "≥": ">=", "≤": "<=", "…": "..."})
#: Font sizes a title tries, largest first, until it fits its column.
TITLE_SIZES = (11, 10, 9, 8, 7)


def add_titles(grid: np.ndarray, titles: list[str], centres: list[float]) -> np.ndarray:
    """``grid`` (H, W, C) with a white band above it holding each title, centred at its x
    (Pillow's built-in font: nothing is downloaded). A title too wide for its column is
    drawn smaller, then shortened with ".."; none runs past the picture's edges."""
    from PIL import Image, ImageDraw

    band = TITLE_BAND
    c = grid.shape[2]
    labelled = np.full((grid.shape[0] + band, grid.shape[1], c), 255, dtype=np.uint8)
    labelled[band:] = grid
    picture = Image.fromarray(labelled[:, :, 0] if c == 1 else labelled[:, :, :3])
    draw = ImageDraw.Draw(picture)
    column = min((b - a for a, b in itertools.pairwise(centres)), default=picture.width)
    for title, x in zip(titles, centres, strict=False):
        if not title:
            continue
        text, font, width = _fitted_title(draw, title.translate(PLAIN_CHARACTERS), column)
        left = min(max(0.0, x - width / 2), max(0.0, picture.width - width))
        draw.text((left, 2), text, fill=0, font=font)
    out = np.asarray(picture)
    return out[:, :, None] if out.ndim == 2 else out


@functools.cache
def _title_fonts() -> tuple[Any, ...]:
    """The title font at each of :data:`TITLE_SIZES`, largest first (loaded once)."""
    from PIL import ImageFont

    fonts = []
    for size in TITLE_SIZES:
        try:
            fonts.append(ImageFont.load_default(size=size))
        except (TypeError, ImportError, OSError):  # a Pillow without FreeType: one size
            return (ImageFont.load_default(),)
    return tuple(fonts)


def _fitted_title(draw: Any, title: str, room: float) -> tuple[str, Any, float]:
    """(text, font, width): ``title`` at the largest size that fits ``room`` pixels,
    shortened at the smallest when none does."""

    def width(text: str, font: Any) -> float:
        left, _, right, _ = draw.textbbox((0, 0), text, font=font)
        return float(right - left)

    fonts = _title_fonts()
    for font in fonts:
        if width(title, font) <= room:
            return title, font, width(title, font)
    font, text = fonts[-1], title
    while len(text) > 1 and width(text + "..", font) > room:
        text = text[:-1]
    text = text + ".." if text != title else text
    if width(text, font) >= width(title, font):  # a short title gains nothing from ".."
        text = title
    return text, font, width(text, font)


def to_uint8(images) -> np.ndarray:
    """Float images in [0, 1] (tensor or array, (N, C, H, W)) to uint8."""
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def save_grid(
    images: np.ndarray,
    path: str | Path,
    ncol: int | None = None,
    scale: int | None = None,
    titles: list[str] | None = None,
    group: int = 1,
) -> Path:
    """Write a PNG grid of uint8 (N, C, H, W) images atomically; small images are enlarged.
    ``titles``: one per column, written above the grid; ``group``: see :func:`make_grid`."""
    from PIL import Image

    from vaekit.runs import atomic_path

    if scale is None:
        scale = max(1, 64 // max(images.shape[2:]))
    grid = make_grid(images, ncol=ncol, scale=scale, group=group)
    if titles:
        columns = min(ncol or max(1, math.ceil(math.sqrt(len(images)))), max(len(images), 1))
        centres = column_centres(columns, images.shape[3], scale=scale, group=group)
        grid = add_titles(grid, titles, centres)
    mode = "L" if grid.shape[2] == 1 else "RGB"
    picture = Image.fromarray(grid[:, :, 0] if mode == "L" else grid[:, :, :3], mode=mode)
    path = Path(path)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return path
