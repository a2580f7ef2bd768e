"""Built-in plugin: dataset sources.

``digits`` is scikit-learn's bundled 8x8 digits, the embedded default: real,
offline, instant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaekit import hookimpl
from vaekit.data import ImageDataset


class DigitsSource:
    """scikit-learn's 1,797 8x8 grayscale digits with class names "0" ... "9"."""

    detect_priority = -100

    @staticmethod
    def detect(path: Path) -> bool:
        return False  # only chosen by name, or when no path is given

    @staticmethod
    def load(path: Path | None) -> ImageDataset:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
        return ImageDataset(
            images=images,
            ids=np.array([str(i) for i in range(len(images))]),
            source="digits",
            location="embedded",
            labels=bunch.target.astype(np.int64),
            class_names=[str(i) for i in range(10)],
        )


@hookimpl
def register_datasets(register):
    """Register the built-in dataset sources."""
    register("digits", DigitsSource)
