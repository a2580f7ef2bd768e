"""A dataset source: a CSV file with a ``label`` column and one column per pixel.

label,p0,p1,...,p63     (square gray images; values 0..255)
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from vaekit.data import ImageDataset
from vaekit.errors import DataError


class CSVImages:
    """Gray square images from a CSV file; the label column gives the classes."""

    detect_priority = 5

    @staticmethod
    def detect(path: Path) -> bool:
        if path.suffix.lower() != ".csv" or not path.is_file():
            return False
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), [])
        return bool(header) and header[0] == "label" and header[1:2] == ["p0"]

    @staticmethod
    def load(path: Path | None) -> ImageDataset:
        if path is None:
            raise DataError("the csv dataset needs a file: vaekit train images.csv")
        if not path.is_file():
            raise DataError(f"'{path}' is not a file; give a CSV with a label column and pixels")
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        header, body = rows[0], rows[1:]
        side = math.isqrt(len(header) - 1)
        if side * side != len(header) - 1 or not body:
            raise DataError(f"'{path}' must have a label column and a square number of pixels")
        names = sorted({row[0] for row in body})
        labels = np.array([names.index(row[0]) for row in body], dtype=np.int64)
        pixels = np.array([[int(v) for v in row[1:]] for row in body], dtype=np.uint8)
        return ImageDataset(
            images=pixels.reshape(len(body), 1, side, side),
            ids=np.array([str(i) for i in range(len(body))]),
            source="csv",
            location=str(path),
            labels=labels,
            class_names=names,
        )
