"""Reading one image file into a uint8 ``(C, H, W)`` array.

Every image source (folders, CelebA, single files given to ``interpolate``) goes
through :func:`read_image`, so channel conversion and resizing are the same
everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaekit.errors import DataError, UsageError
from vaekit.resize import resize_square

#: File suffixes treated as images (anything Pillow decodes; checked lower-case).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has an image suffix (and is not a hidden file)."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def read_image(
    path: str | Path, channels: int | None = None, image_size: int | None = None
) -> np.ndarray:
    """Decode ``path`` into a uint8 ``(C, H, W)`` array.

    ``channels``: 1 (grayscale, Pillow's "L") or 3 (RGB); ``None`` keeps
    grayscale images at 1 channel and gives everything else 3 (alpha is
    dropped, palettes expanded). ``image_size``: scale the short side to this
    size and centre-crop a square (:func:`vaekit.resize.resize_square`).

    Raises :class:`vaekit.errors.DataError` naming the file when it cannot be
    read or decoded.
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (None, 1, 3):
        raise UsageError(f"--channels must be 1 or 3, got {channels}")
    try:
        with Image.open(path) as picture:
            mode = _target_mode(picture.mode, channels)
            if image_size is not None:
                # JPEG: decode at a reduced scale that still covers image_size (much faster)
                picture.draft(mode, (image_size, image_size))
            picture.load()
            if picture.mode != mode:
                if picture.mode.startswith("I;16") or picture.mode in ("I", "F"):
                    # 16-bit/float grayscale: scale to 8 bits instead of clipping
                    values = np.asarray(picture, dtype=np.float64)
                    top = 65535.0 if picture.mode.startswith("I;16") else max(values.max(), 1.0)
                    picture = Image.fromarray(
                        np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
                    )
                picture = picture.convert(mode)
            array = np.asarray(picture, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image '{path}': {exc}") from exc
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    if image_size is not None:
        array = resize_square(array, image_size)
    return np.ascontiguousarray(array)


def _target_mode(mode: str, channels: int | None) -> str:
    if channels == 1:
        return "L"
    if channels == 3:
        return "RGB"
    grayscale = mode in ("1", "L", "LA", "I", "F") or mode.startswith("I;16")
    return "L" if grayscale else "RGB"
