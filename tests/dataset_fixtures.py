"""Writers of small dataset fixtures (image folders, CelebA layout, IDX, arrays) for tests."""

from __future__ import annotations

import gzip
import runpy
import struct
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def write_image(path: Path, size=(8, 8), channels: int = 3, seed: int = 0, fmt=None) -> Path:
    """A random image of ``size`` (width, height) with 1 or 3 channels."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path, format=fmt)
    return path


def class_folder(root: Path, classes=("cat", "dog"), per_class: int = 3, size=(8, 8)) -> Path:
    """root/<class>/[sub/]<i>.png: nested class folders (every other image one level deeper)."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            sub = "deeper/" if i % 2 else ""
            write_image(root / name / f"{sub}{i}.png", size=size, seed=10 * c + i)
    return root


def corrupt_file(path: Path) -> Path:
    """A file with an image suffix that holds no image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a png")
    return path


CELEBA_NAMES = ["5_o_Clock_Shadow", "Eyeglasses", "Smiling"]
CELEBA_ROWS = [("000001.jpg", [-1, 1, 1]), ("000002.jpg", [1, -1, -1]), ("000003.jpg", [-1, -1, 1])]


def celeba_folder(root: Path, rows=CELEBA_ROWS, names=CELEBA_NAMES, partition=(0, 1, 2)) -> Path:
    """A CelebA-format folder with the real file's quirks (count line, trailing spaces,
    two spaces before a 1, one before a -1)."""
    images = root / "img_align_celeba"
    for i, (name, _) in enumerate(rows):
        write_image(images / name, size=(10, 12), seed=i, fmt="JPEG")
    lines = [str(len(rows)), " ".join(names) + " "]
    lines += [name + " " + " ".join(f"{v:2d}" for v in values) + " " for name, values in rows]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition is not None:
        (root / "list_eval_partition.txt").write_text(
            "".join(f"{name} {p}\n" for (name, _), p in zip(rows, partition, strict=True))
        )
    return root


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write an unsigned-byte IDX file (gzipped if ``compress``)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def idx_folder(
    root: Path, n_train: int = 6, n_test: int = 4, compress: bool = True, train_labels=None
) -> Path:
    """train-/t10k- image and label IDX files of 28x28 images."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    y_train = np.asarray(train_labels if train_labels is not None else np.arange(n_train) % 10)
    for part, n, y in (("train", n_train, y_train), ("t10k", n_test, np.arange(n_test) % 10)):
        write_idx(
            root / f"{part}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), compress
        )
        write_idx(root / f"{part}-labels-idx1-ubyte{suffix}", y.astype(np.uint8), compress)
    return root


def synthetic_faces():
    """The module namespace of datasets/synthetic_faces.py (not an import package)."""
    return runpy.run_path(str(REPO / "datasets" / "synthetic_faces.py"))
