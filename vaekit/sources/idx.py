"""MNIST-style IDX files (gzipped or not): ``train-*`` and ``t10k-*`` image/label pairs.

The IDX format: two zero bytes, a type code (0x08 unsigned byte, 0x09 signed
byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of
dimensions, then each dimension as a big-endian int32, then the data
(big-endian). ``train`` files become split "train", ``t10k`` (or ``test``) files
split "test". Fashion-MNIST is recognised (by "fashion" in the path or by its
first training labels) and gets its class names.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from pathlib import Path

import numpy as np

from vaekit.dataset import SPLITS, ImageDataset
from vaekit.errors import DataError

FASHION_CLASSES = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]
# The first 16 training labels of Fashion-MNIST (MNIST's begin 5 0 4 1 9 ...).
FASHION_TRAIN_HEAD = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9]
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
PATTERN = re.compile(
    r"^(?P<prefix>.*?)(?P<part>train|t10k|test)-(?P<kind>images|labels)[-.]idx\d-ubyte(\.gz)?$",
    re.IGNORECASE,
)
PART_SPLIT = {
    "train": SPLITS.index("train"),
    "t10k": SPLITS.index("test"),
    "test": SPLITS.index("test"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped when it starts with the gzip magic) into a numpy array.

    The header is read and checked first: its declared size must fit the file (for a
    plain file) and the memory limit (:mod:`vaekit.limits`), and a gzipped file is
    decompressed only up to what the header declares, so a crafted header or a
    decompression bomb is one line, never an allocation of whatever it claims."""
    from vaekit.files import check_input_file
    from vaekit.limits import check_memory

    try:
        check_input_file(path, what="IDX file")
        with open(path, "rb") as raw_fh:
            gzipped = raw_fh.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as fh:
            magic = fh.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in DTYPES:
                raise DataError(f"'{path}' is not an IDX file (bad magic number)")
            ndim = magic[3]
            if not 1 <= ndim <= 4:  # labels are 1-D, images 3-D or 4-D
                raise DataError(f"IDX file '{path}' declares {ndim} dimensions; expected 1 to 4")
            dims = fh.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"IDX file '{path}' is truncated inside its header")
            shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">i4"))
            dtype = np.dtype(DTYPES[magic[2]])
            if any(d < 0 for d in shape):
                raise DataError(f"IDX file '{path}' declares a negative size {shape}")
            expected = math.prod(shape) * dtype.itemsize
            if not gzipped and expected > path.stat().st_size:
                raise DataError(
                    f"IDX file '{path}' is truncated: its header promises {expected:,} data "
                    f"bytes, the file has {path.stat().st_size:,}; download it again"
                )
            check_memory(
                expected, f"IDX file '{path}' ({shape})", "check that it is the right file"
            )
            data = _read_at_most(fh, expected)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file '{path}': {exc}") from None
    if len(data) < expected:
        raise DataError(
            f"IDX file '{path}' is truncated: {len(data):,} data bytes, header promises "
            f"{expected:,}; download it again"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _read_at_most(fh, n: int, block: int = 1 << 22) -> bytes:
    """Up to ``n`` bytes of ``fh``, in blocks: ``read(n)`` would set aside ``n`` bytes at
    once, whatever the file holds, and ``n`` comes from a header that may lie."""
    parts, got = [], 0
    while got < n:
        part = fh.read(min(block, n - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def find_idx_files(path: Path) -> dict[str, dict[str, Path]]:
    """``{part: {"images": path, "labels": path}}`` for the IDX files at ``path``."""
    candidates = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    found: dict[str, dict[str, Path]] = {}
    for candidate in candidates:
        match = PATTERN.match(candidate.name)
        if match:
            part = match["part"].lower()
            found.setdefault(part, {}).setdefault(match["kind"].lower(), candidate)
    return found


def detect(path: Path) -> bool:
    """A folder (or file) holding ``*-images-idx3-ubyte[.gz]`` files."""
    try:
        return any("images" in parts for parts in find_idx_files(path).values())
    except OSError:
        return False


def load_idx(root: Path, class_names: list[str] | None = None) -> ImageDataset:
    """Read IDX image (and label) files; ``class_names`` overrides the recognised names."""
    root = Path(root)
    parts = find_idx_files(root)
    parts = {part: files for part, files in parts.items() if "images" in files}
    if not parts:
        raise DataError(
            f"no IDX image files (train-images-idx3-ubyte[.gz]) in '{root}'; "
            "see docs/datasets.md for Fashion-MNIST"
        )
    images, labels, ids, split = [], [], [], []
    have_labels = all("labels" in files for files in parts.values())
    first_train_labels = None
    for part in sorted(parts, key=lambda p: PART_SPLIT[p]):
        files = parts[part]
        array = read_idx(files["images"])
        if array.ndim == 3:
            array = array[:, None]
        elif array.ndim != 4:
            raise DataError(f"'{files['images']}' holds shape {array.shape}, not images")
        if array.dtype != np.uint8:
            raise DataError(
                f"'{files['images']}' holds {array.dtype} values; expected unsigned bytes"
            )
        images.append(array)
        if have_labels:
            y = read_idx(files["labels"]).astype(np.int64).reshape(-1)
            if len(y) != len(array):
                raise DataError(
                    f"'{files['labels']}' has {len(y)} labels for {len(array)} images; "
                    "use matching files"
                )
            labels.append(y)
            if part == "train":
                first_train_labels = y[: len(FASHION_TRAIN_HEAD)].tolist()
        ids.extend(f"{part}/{i}" for i in range(len(array)))
        split.append(np.full(len(array), PART_SPLIT[part], dtype=np.uint8))
    y_all = np.concatenate(labels) if have_labels else None
    if class_names is None and y_all is not None:
        fashion = (
            "fashion" in str(root.resolve()).lower() or first_train_labels == FASHION_TRAIN_HEAD
        )
        if fashion and y_all.max(initial=0) < len(FASHION_CLASSES):
            class_names = list(FASHION_CLASSES)
        else:
            class_names = [str(i) for i in range(int(y_all.max(initial=-1)) + 1)]
    if class_names is not None and y_all is not None and y_all.max(initial=0) >= len(class_names):
        raise DataError(f"labels go up to {y_all.max()} but only {len(class_names)} class names")
    return ImageDataset(
        images=np.ascontiguousarray(np.concatenate(images)),
        ids=np.asarray(ids),
        source="idx",
        location=str(root),
        labels=y_all,
        class_names=class_names if y_all is not None else None,
        split=np.concatenate(split),
    )
