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
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

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


#: The most a deflate stream expands (258 bytes from 2 bits, the format's best case): a
#: gzipped file of ``n`` bytes decompresses to at most ``DEFLATE_MAX_RATIO * n``.
DEFLATE_MAX_RATIO = 1032
#: Bytes decompressed per read: the only transient copy while a file is read.
BLOCK = 1 << 22


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped when it starts with the gzip magic) into a numpy array.

    The header is read and checked first (:func:`open_idx`); the data is then
    decompressed block by block straight into the array, so a crafted header or a
    decompression bomb is one line, never an allocation of whatever it claims."""
    with open_idx(path) as (fh, dtype, shape):
        out = np.empty(shape, dtype=dtype)
        read_into(fh, out, path)
    return out


@contextmanager
def open_idx(path: Path) -> Iterator[tuple[BinaryIO, np.dtype, tuple[int, ...]]]:
    """Open an IDX file and check its header: ``(stream at the data, dtype, shape)``.

    The declared size must fit the file (for a plain file: its size; for a gzipped
    one: what its compressed bytes can hold at deflate's best ratio) and the memory
    limit (:mod:`vaekit.limits`). Errors reading the file are one-line DataErrors."""
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
            size = path.stat().st_size
            if not gzipped and expected > size:
                raise DataError(
                    f"IDX file '{path}' is truncated: its header promises {expected:,} data "
                    f"bytes, the file has {size:,}; download it again"
                )
            check_memory(
                expected, f"IDX file '{path}' ({shape})", "check that it is the right file"
            )
            if gzipped and expected > DEFLATE_MAX_RATIO * size:
                raise DataError(
                    f"IDX file '{path}' is truncated: its header promises {expected:,} data "
                    f"bytes, more than its {size:,} compressed bytes can hold; download it again"
                )
            yield fh, dtype, shape
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file '{path}': {exc}") from None


def read_into(fh: BinaryIO, out: np.ndarray, path: Path) -> None:
    """Fill the contiguous array ``out`` from ``fh`` (an IDX stream at its data, inside
    :func:`open_idx`, which turns read errors into DataErrors), ``BLOCK`` bytes at a
    time: nothing beyond ``out`` is decompressed, and besides ``out`` nothing larger
    than a block is set aside."""
    expected, got = out.nbytes, 0
    with memoryview(out.reshape(-1).view(np.uint8)) as view:
        while got < expected:
            n = fh.readinto(view[got : got + BLOCK])
            if not n:
                break
            got += n
    if got < expected:
        raise DataError(
            f"IDX file '{path}' is truncated: {got:,} data bytes, header promises "
            f"{expected:,}; download it again"
        )


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


def load_idx(
    root: Path, class_names: list[str] | None = None, splits: Collection[str] | None = None
) -> ImageDataset:
    """Read IDX image (and label) files; ``class_names`` overrides the recognised names.

    ``splits`` (names of :data:`vaekit.data.SPLITS`; None: all): read only the image
    files of those splits (``train`` files for ``train`` and ``val``, ``t10k`` for
    ``test``; all of them when none is there, so that the caller can say which splits
    there are). The label files are all read, whatever ``splits``: they are small and
    decide the class names, which must not depend on the split asked for. The images
    are decompressed straight into the one array returned."""
    root = Path(root)
    parts = find_idx_files(root)
    parts = {part: files for part, files in parts.items() if "images" in files}
    if not parts:
        raise DataError(
            f"no IDX image files (train-images-idx3-ubyte[.gz]) in '{root}'; "
            "see docs/datasets.md for Fashion-MNIST"
        )
    order = sorted(parts, key=lambda p: PART_SPLIT[p])
    labels = _read_labels(parts) if all("labels" in f for f in parts.values()) else None
    if splits is not None:
        order = [p for p in order if SPLITS[PART_SPLIT[p]] in splits] or order
    images, counts = _read_images([parts[part]["images"] for part in order])
    if labels is not None:
        for part, n in zip(order, counts, strict=True):
            if len(labels[part]) != n:
                raise DataError(
                    f"'{parts[part]['labels']}' has {len(labels[part])} labels for {n} images; "
                    "use matching files"
                )
        class_names = _class_names(root, labels, class_names)
    ids = [[f"{part}/{i}" for i in range(n)] for part, n in zip(order, counts, strict=True)]
    return ImageDataset(
        images=images,
        ids=np.concatenate(ids),
        source="idx",
        location=str(root),
        labels=None if labels is None else np.concatenate([labels[p] for p in order]),
        class_names=class_names if labels is not None else None,
        split=np.repeat(np.array([PART_SPLIT[p] for p in order], dtype=np.uint8), counts),
    )


def _read_images(paths: list[Path]) -> tuple[np.ndarray, list[int]]:
    """The image files' data as one uint8 (N, C, H, W) array, each file decompressed
    straight into its rows (no copy of a whole file, no concatenation); and how many
    images each file holds."""
    from vaekit.limits import check_memory

    with ExitStack() as stack:
        opened = [stack.enter_context(open_idx(path)) for path in paths]
        shapes = []
        for path, (_, dtype, shape) in zip(paths, opened, strict=True):
            if len(shape) == 3:
                shape = (shape[0], 1, *shape[1:])
            elif len(shape) != 4:
                raise DataError(f"'{path}' holds shape {shape}, not images")
            if dtype != np.uint8:
                raise DataError(f"'{path}' holds {dtype} values; expected unsigned bytes")
            if shapes and shape[1:] != shapes[0][1:]:
                raise DataError(
                    f"'{path}' holds images of shape {shape[1:]}, '{paths[0]}' of "
                    f"{shapes[0][1:]}; use matching files"
                )
            shapes.append(shape)
        counts = [shape[0] for shape in shapes]
        total = (sum(counts), *shapes[0][1:])
        check_memory(math.prod(total), f"the IDX images {total}", "check the files")
        images = np.empty(total, dtype=np.uint8)
        start = 0
        for path, (fh, _, _), n in zip(paths, opened, counts, strict=True):
            read_into(fh, images[start : start + n], path)
            start += n
    return images, counts


def _read_labels(parts: dict[str, dict[str, Path]]) -> dict[str, np.ndarray]:
    """Every part's labels (int64), whatever split is asked for: they are small."""
    return {
        part: read_idx(files["labels"]).astype(np.int64).reshape(-1)
        for part, files in parts.items()
    }


def _class_names(
    root: Path, labels: dict[str, np.ndarray], class_names: list[str] | None
) -> list[str]:
    """``class_names``, else Fashion-MNIST's (recognised by ``fashion`` in the path or by
    its first training labels), else "0", "1", ...; checked against every label."""
    y_all = np.concatenate(list(labels.values()))
    if class_names is None:
        head = labels["train"][: len(FASHION_TRAIN_HEAD)].tolist() if "train" in labels else None
        fashion = "fashion" in str(root.resolve()).lower() or head == FASHION_TRAIN_HEAD
        if fashion and y_all.max(initial=0) < len(FASHION_CLASSES):
            class_names = list(FASHION_CLASSES)
        else:
            class_names = [str(i) for i in range(int(y_all.max(initial=-1)) + 1)]
    if y_all.max(initial=0) >= len(class_names):
        raise DataError(f"labels go up to {y_all.max()} but only {len(class_names)} class names")
    return class_names
