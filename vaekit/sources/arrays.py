"""Images stored as arrays: ``.npz``, ``.npy`` or HDF5 (``.h5``, ``.hdf5``).

Keys looked for (the first present wins):

- images: ``images``, ``x``, ``X``, ``data``, ``arr_0`` -- or ``x_train``/``x_test``
  (Keras style; they become the train and test splits, with ``y_train``/``y_test``);
- class labels: ``labels``, ``y``, ``targets``; class names: ``class_names``;
- attributes: ``attributes`` (N x A, 0/1) with ``attribute_names``;
- splits: ``split`` (0 train, 1 val, 2 test, or the names).

Images may be (N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1, 3, 4 (alpha
dropped); uint8 as is, floats in [0, 1] scaled to 0..255, bools to 0/255.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vaekit.dataset import SPLITS, ImageDataset
from vaekit.errors import DataError

SUFFIXES = (".npz", ".npy", ".h5", ".hdf5", ".hdf")
IMAGE_KEYS = ("images", "x", "X", "data", "arr_0")
LABEL_KEYS = ("labels", "y", "targets", "label")


def detect(path: Path) -> bool:
    """A file with an array suffix (HDF5 files must hold an images dataset)."""
    if not path.is_file() or path.suffix.lower() not in SUFFIXES:
        return False
    if path.suffix.lower() in (".npz", ".npy"):
        return True
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return any(k in f for k in (*IMAGE_KEYS, "x_train"))
    except OSError:
        return False


def load_arrays(path: Path, layout: str | None = None) -> ImageDataset:
    """Read images (and labels, attributes, splits) from an array file.

    ``layout``: ``"nchw"`` or ``"nhwc"`` when the shape alone is ambiguous.
    """
    path = Path(path)
    arrays = _read(path)
    split = None
    if "x_train" in arrays:
        parts = [(p, arrays[f"x_{p}"], arrays.get(f"y_{p}")) for p in ("train", "test")]
        parts = [(p, x, y) for p, x, y in parts if x is not None]
        images = np.concatenate([_to_nchw(x, path, layout) for _, x, _ in parts])
        ys = [y for _, _, y in parts]
        labels = (
            np.concatenate([np.asarray(y).reshape(-1) for y in ys])
            if all(y is not None for y in ys)
            else None
        )
        split = np.concatenate(
            [np.full(len(x), SPLITS.index(p), dtype=np.uint8) for p, x, _ in parts]
        )
    else:
        key = next((k for k in IMAGE_KEYS if k in arrays), None)
        if key is None:
            raise DataError(
                f"'{path}' holds no images array (looked for {', '.join(IMAGE_KEYS)}, x_train); "
                f"it has: {', '.join(sorted(arrays)) or 'nothing'}"
            )
        images = _to_nchw(arrays[key], path, layout)
        label_key = next((k for k in LABEL_KEYS if k in arrays), None)
        labels = None if label_key is None else np.asarray(arrays[label_key]).reshape(-1)
        if "split" in arrays:
            split = _split(np.asarray(arrays["split"]), path)
    class_names = _strings(arrays.get("class_names"))
    if labels is not None:
        labels, class_names = _labels(labels, class_names, path)
    attributes = attribute_names = None
    if "attributes" in arrays:
        attributes = np.asarray(arrays["attributes"]) > 0
        if attributes.ndim != 2:
            raise DataError(f"'{path}': attributes must be (N, A), got shape {attributes.shape}")
        attribute_names = _strings(arrays.get("attribute_names")) or [
            f"attr{i}" for i in range(attributes.shape[1])
        ]
        if len(attribute_names) != attributes.shape[1]:
            raise DataError(
                f"'{path}': {len(attribute_names)} attribute_names "
                f"for {attributes.shape[1]} columns"
            )
    ids = arrays.get("ids")
    ids = np.asarray(_strings(ids)) if ids is not None else np.arange(len(images)).astype(str)
    return ImageDataset(
        images=images,
        ids=ids,
        source="arrays",
        location=str(path),
        labels=labels,
        class_names=class_names,
        attributes=attributes,
        attribute_names=attribute_names,
        split=split,
    )


def _read(path: Path) -> dict[str, Any]:
    """The arrays of an .npy/.npz/HDF5 file; what each declares is checked against the
    file (or its zip member) and the memory limit before it is read."""
    import zipfile

    from vaekit.files import check_input_file
    from vaekit.limits import check_memory

    check_input_file(path, what="array file")
    suffix = path.suffix.lower()
    fix = "check that it is the right file"
    try:
        if suffix == ".npy":
            mapped = np.load(path, mmap_mode="r", allow_pickle=False)  # its header vs its size
            check_memory(mapped.nbytes, f"array file '{path}'", fix)
            return {"images": np.array(mapped)}
        if suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                declared = sum(member.file_size for member in archive.infolist())
            check_memory(declared, f"array file '{path}'", fix)
            with np.load(path, allow_pickle=False) as arrays:
                return {k: arrays[k] for k in arrays.files}
        import h5py

        with h5py.File(path, "r") as f:
            datasets = {k: f[k] for k in f if isinstance(f[k], h5py.Dataset)}
            declared = sum(d.size * d.dtype.itemsize for d in datasets.values())
            check_memory(declared, f"array file '{path}'", fix)
            return {k: d[()] for k, d in datasets.items()}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read array file '{path}': {exc}") from None


def _to_nchw(array: Any, path: Path, layout: str | None) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise DataError(f"'{path}': images must be (N, H, W) or 4-D, got shape {a.shape}")
    if layout not in (None, "nchw", "nhwc"):
        raise DataError(f"layout must be nchw or nhwc, got '{layout}'")
    if layout is None:
        layout = "nhwc" if a.shape[3] in (1, 3, 4) and a.shape[1] not in (1, 3) else "nchw"
    if layout == "nhwc":
        a = a.transpose(0, 3, 1, 2)
    if a.shape[1] == 4:
        a = a[:, :3]
    if a.shape[1] not in (1, 3):
        raise DataError(
            f"'{path}': images have {a.shape[1]} channels; expected 1 or 3 "
            "(pass --dataset-opt layout=nhwc or nchw if the axes were misread)"
        )
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == bool:
        return np.ascontiguousarray(a.astype(np.uint8) * 255)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise DataError(
                f"'{path}': float images hold NaN or infinite values; store them in [0, 1] "
                "or as uint8"
            )
        lo, hi = float(a.min(initial=0)), float(a.max(initial=0))
        if lo < 0 or hi > 1:
            raise DataError(
                f"'{path}': float images range over [{lo:g}, {hi:g}]; "
                "store them in [0, 1] or as uint8"
            )
        return np.ascontiguousarray(np.rint(a * 255).astype(np.uint8))
    if np.issubdtype(a.dtype, np.integer) and a.min(initial=0) >= 0 and a.max(initial=0) <= 255:
        return np.ascontiguousarray(a.astype(np.uint8))
    raise DataError(f"'{path}': images of dtype {a.dtype} must be uint8, or floats in [0, 1]")


def _labels(labels: np.ndarray, names: list[str] | None, path: Path):
    if labels.dtype.kind in "US" or labels.dtype == object:
        values = [str(v.decode() if isinstance(v, bytes) else v) for v in labels]
        names = names or sorted(set(values))
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted(set(values) - set(index))
        if unknown:
            raise DataError(f"'{path}': labels {unknown[:3]} are not in class_names")
        return np.array([index[v] for v in values], dtype=np.int64), names
    labels = labels.astype(np.int64)
    top = int(labels.max(initial=-1))
    if names is None:
        names = [str(i) for i in range(top + 1)]
    elif top >= len(names):
        raise DataError(f"'{path}': labels go up to {top} but there are {len(names)} class_names")
    return labels, names


def _split(split: np.ndarray, path: Path) -> np.ndarray:
    if split.dtype.kind in "USO":
        values = [str(v.decode() if isinstance(v, bytes) else v) for v in split]
        bad = sorted(set(values) - set(SPLITS))
        if bad:
            raise DataError(f"'{path}': split values {bad} are not among {', '.join(SPLITS)}")
        return np.array([SPLITS.index(v) for v in values], dtype=np.uint8)
    if split.min(initial=0) < 0 or split.max(initial=0) >= len(SPLITS):
        raise DataError(f"'{path}': split values must be 0 (train), 1 (val) or 2 (test)")
    return split.astype(np.uint8)


def _strings(values: Any) -> list[str] | None:
    if values is None:
        return None
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).reshape(-1)]
