"""The images every dataset plugin returns (:class:`ImageDataset`) and the split names:
the data type of the plugin contract, below everything that reads or trains on it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vaekit.errors import DataError, UsageError

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: the splits evaluated when none is named: the test images, else the validation ones
HELD_OUT: tuple[str, ...] = ("test", "val")
#: a dataset's own splits that hold each split's images (validation images are carved from
#: the training ones): what a dataset plugin that reads by split is asked for
SOURCE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("train", "val"),
    "test": ("test",),
}
UNLABELLED = -1


@dataclass
class ImageDataset:
    """Images with ids, splits and optional class labels and binary attributes.

    ``labels`` holds one class id per image (``UNLABELLED`` = -1 where unknown)
    with ``class_names[id]`` its name; ``attributes`` holds many booleans per
    image with ``attribute_names``. ``split`` holds an index into ``SPLITS`` per
    image, or is ``None`` when the data has no split of its own.
    """

    images: np.ndarray  # (N, C, H, W) uint8
    ids: np.ndarray  # (N,) str: relative paths or indices
    source: str  # the dataset plugin's name
    location: str  # the path it came from, or "embedded"
    labels: np.ndarray | None = None  # (N,) int64
    class_names: list[str] | None = None
    attributes: np.ndarray | None = None  # (N, A) bool
    attribute_names: list[str] | None = None
    split: np.ndarray | None = None  # (N,) uint8 index into SPLITS
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(
                f"dataset '{self.source}' gave images of dtype {self.images.dtype} and shape "
                f"{self.images.shape}; expected uint8 (N, C, H, W)"
            )
        n = len(self.images)
        self.ids = np.asarray(self.ids, dtype=str)
        for name in ("ids", "labels", "attributes", "split"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise DataError(
                    f"dataset '{self.source}': {name} has {len(value)} rows, images {n}"
                )
        if not self.fingerprint:
            self.fingerprint = fingerprint_arrays(self.images, self.ids)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: np.ndarray) -> ImageDataset:
        """The rows at ``index`` (an int array or boolean mask), keeping names and source."""

        def take(a):
            return None if a is None else a[index]

        return replace(
            self,
            images=self.images[index],
            ids=self.ids[index],
            labels=take(self.labels),
            attributes=take(self.attributes),
            split=take(self.split),
        )

    def with_splits(self, val_fraction: float = 0.1, seed: int = 0) -> ImageDataset:
        """Give every image a split. The dataset's own split is kept; ``val_fraction`` of
        its training images (of all images, when it has none) become ``val``, chosen by a
        seeded permutation so every command sees the same split."""
        if not 0 <= val_fraction < 1:
            raise UsageError(f"validation fraction must be in [0, 1), got {val_fraction}")
        split = np.zeros(len(self), dtype=np.uint8) if self.split is None else self.split.copy()
        train = np.flatnonzero(split == SPLITS.index("train"))
        n_val = int(round(val_fraction * len(train)))
        if n_val:
            rng = np.random.default_rng(seed)
            split[rng.permutation(train)[:n_val]] = SPLITS.index("val")
        return replace(self, split=split)

    def select_split(self, name: str | None) -> ImageDataset:
        """Only the images of split ``name`` (``None`` or ``"all"``: everything)."""
        chosen = self._split_mask(name)
        if chosen is None or chosen.all():  # all of it: no copy
            return self
        return self.subset(chosen)

    def _split_mask(self, name: str | None) -> np.ndarray | None:
        """Which rows are in split ``name`` (None for ``None`` or ``"all"``: every row)."""
        if name in (None, "all"):
            return None
        if name not in SPLITS:
            raise UsageError(f"unknown split '{name}'; choose one of: all, {', '.join(SPLITS)}")
        if self.split is None:
            raise UsageError(f"dataset '{self.source}' has no splits; use --split all")
        return self.split == SPLITS.index(name)

    def first_split(self, order: Sequence[str] = HELD_OUT) -> str:
        """The first split of ``order`` that has images here, else ``all``."""
        if self.split is None:
            return "all"
        for name in order:
            if (self.split == SPLITS.index(name)).any():
                return name
        return "all"

    def choose_split(self, split: str | Sequence[str] | None) -> str | None:
        """A ``--split`` value as one name: ``split`` itself when it is a name (or
        ``None``, everything), else the first of the names it lists that has images."""
        if split is None or isinstance(split, str):
            return split
        return self.first_split(split)

    def require_split(self, name: str | None) -> ImageDataset:
        """Like :meth:`select_split` (for a ``--split`` option), but an empty selection is an
        error that names the splits the data has."""
        rows = self.split_rows(name)
        return self if len(rows) == len(self) else self.subset(rows)

    def split_rows(self, name: str | None) -> np.ndarray:
        """The row numbers (ascending) of split ``name`` (``None`` or ``"all"``: every row),
        checked as :meth:`require_split` checks them. Going through a split by row numbers
        needs no copy of its images."""
        chosen = self._split_mask(name)
        if chosen is None:
            return np.arange(len(self))
        rows = np.flatnonzero(chosen)
        if len(rows) == 0 and len(self):
            present = [s for i, s in enumerate(SPLITS) if (self.split == i).any()]
            raise UsageError(
                f"dataset '{self.source}' has no '{name}' images; its splits are: "
                f"{', '.join(present)} (use --split {present[-1]} or --split all)"
            )
        return rows

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for run configs and file attributes."""
        return {
            "source": self.source,
            "location": self.location,
            "n": len(self),
            "image_shape": list(self.image_shape),
            "class_names": self.class_names,
            "attribute_names": self.attribute_names,
            "fingerprint": self.fingerprint,
        }


def fingerprint_arrays(*arrays: np.ndarray, sample: int = 4096) -> str:
    """A short, stable hash of arrays' shapes and (a strided sample of) their contents."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.shape, array.dtype.str)).encode())
        step = max(1, len(array) // sample)
        digest.update(np.ascontiguousarray(array[::step]).tobytes())
    return digest.hexdigest()[:16]
