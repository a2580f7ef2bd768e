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


def load_arrays(
    path: Path, layout: str | None = None, splits: tuple[str, ...] | None = None
) -> ImageDataset:
    """Read images (and labels, attributes, splits) from an array file.

    ``layout``: ``"nchw"`` or ``"nhwc"`` when the shape alone is ambiguous. ``splits``
    (``train``, ``test``; None: both): with ``x_train``/``x_test`` arrays, the images
    of the others are left unread; rows keep the ids and class names of a whole read
    (the labels, which decide the names, are small and always read whole).
    """
    path = Path(path)
    arrays, lengths = _read(path, skip=_unread_images(splits))
    if lengths and not any(f"x_{p}" in arrays for p in ("train", "test")):
        arrays, lengths = _read(path)  # the file lacks the part asked for: read what it has
    split = None
    if "x_train" in arrays or "x_train" in lengths:
        parts = [p for p in ("train", "test") if f"x_{p}" in arrays or f"x_{p}" in lengths]
        sizes = [len(arrays[f"x_{p}"]) if f"x_{p}" in arrays else lengths[f"x_{p}"] for p in parts]
        starts = np.cumsum([0, *sizes])
        read = [i for i, p in enumerate(parts) if f"x_{p}" in arrays]
        images = np.concatenate([_to_nchw(arrays[f"x_{parts[i]}"], path, layout) for i in read])
        ys = [arrays.get(f"y_{p}") for p in parts]
        labels = None
        if all(y is not None for y in ys):
            flat = [np.asarray(y).reshape(-1) for y in ys]
            whole, names = _labels(np.concatenate(flat), _strings(arrays.get("class_names")), path)
            labels = np.concatenate([whole[starts[i] : starts[i + 1]] for i in read])
            arrays["class_names"] = names
        split = np.concatenate(
            [np.full(sizes[i], SPLITS.index(parts[i]), dtype=np.uint8) for i in read]
        )
        rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in read])
        for key in ("ids", "attributes"):  # per row of the whole file: the rows read
            if key in arrays and len(arrays[key]) == starts[-1] and len(rows) < starts[-1]:
                arrays[key] = np.asarray(arrays[key])[rows]
        if "ids" not in arrays:  # a row's id is its place in the whole file, read or not
            arrays["ids"] = rows.astype(str)
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


def _unread_images(splits: tuple[str, ...] | None) -> tuple[str, ...]:
    """The ``x_<part>`` arrays a read of the source's own ``splits`` leaves unread."""
    if splits is None:
        return ()
    keep = {"train" if s in ("train", "val") else s for s in splits}
    return tuple(f"x_{p}" for p in ("train", "test") if p not in keep)


def _read(path: Path, skip: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, int]]:
    """The arrays of an .npy/.npz/HDF5 file, and the lengths of those in ``skip`` (left
    unread, their headers read instead); what each declares is checked against the file
    (or its zip member) and the memory limit before it is read."""
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
            return {"images": np.array(mapped)}, {}
        if suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                members = {m.filename.removesuffix(".npy"): m for m in archive.infolist()}
                lengths = {k: _npy_length(archive, members[k]) for k in skip if k in members}
                declared = sum(m.file_size for k, m in members.items() if k not in lengths)
            check_memory(declared, f"array file '{path}'", fix)
            with np.load(path, allow_pickle=False) as arrays:
                return {k: arrays[k] for k in arrays.files if k not in lengths}, lengths
        import h5py

        with h5py.File(path, "r") as f:
            datasets = {k: f[k] for k in f if isinstance(f[k], h5py.Dataset)}
            lengths = {k: len(datasets.pop(k)) for k in skip if k in datasets}
            declared = sum(d.size * d.dtype.itemsize for d in datasets.values())
            check_memory(declared, f"array file '{path}'", fix)
            return {k: d[()] for k, d in datasets.items()}, lengths
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read array file '{path}': {exc}") from None


def _npy_length(archive: Any, member: Any) -> int:
    """The first dimension of an .npz member, from its .npy header alone."""
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape = np.lib.format.read_array_header_1_0(f)[0]
        else:
            shape = np.lib.format.read_array_header_2_0(f)[0]
    if not shape:
        raise ValueError(f"{member.filename} is a scalar, not an array of images")
    return int(shape[0])


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
