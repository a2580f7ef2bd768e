"""Export a latent store to the formats other tools read: AnnData, Parquet, NPZ.

``export_latents(store, output)`` picks the format from the output's suffix:

- ``.h5ad`` (AnnData, needs ``anndata``): one observation per image, named by its id.
  ``obsm["X_vaekit"]`` holds the posterior means and ``obsm["X_vaekit_logvar"]`` the
  log-variances; ``obs`` the class (``label``, a categorical over every class name,
  missing where unlabelled), the split (categorical) and one bool column per attribute;
  ``uns["vaekit"]`` the provenance. ``X`` is left empty (``None``, zero variables): X
  holds measured features (pixels here), which the store does not keep, and a copy of
  the means there would double the file. ``scanpy.pp.neighbors(adata,
  use_rep="X_vaekit")`` uses the means as they are.
- ``.parquet`` (needs ``pyarrow``): one row per image with the columns ``id``,
  ``label`` and ``split`` (dictionary-encoded: pandas reads them as categoricals),
  one bool column per attribute, then ``mu_0 … mu_{D-1}`` and ``logvar_0 …
  logvar_{D-1}`` as float32 scalars (flat columns, so ``df.filter(regex="^mu_")``
  is the (N, D) matrix; list columns would read back as arrays of objects). The
  provenance is the JSON value of the file's key-value metadata key ``vaekit``.
  Written one row group per block of rows: memory is one block whatever N is.
- ``.npz`` (numpy only): the arrays ``mu``, ``logvar``, ``ids`` and, when the store
  has them, ``labels`` + ``class_names``, ``attributes`` + ``attribute_names``,
  ``split`` + ``split_names``; ``provenance`` is a 0-d string array holding JSON.
  Strings are fixed-width unicode, so ``numpy.load`` needs no pickles. ``mu`` and
  ``logvar`` are streamed block by block into the archive.

An attribute whose name is already a column (``label``, ``split``, ``id``, ``mu_3``)
gets the prefix ``attribute_``.

The provenance (every format) is the store's file attributes (the encoding vaekit,
``model_config`` and ``preprocessing`` as JSON text, ``run_dir``, ``weights_sha256``,
``dataset_source``, ``dataset_location``, ``dataset_fingerprint``, …, less ``format``
and ``complete``) plus ``source_store`` (its absolute path), ``source_content_hash``
(:meth:`vaekit.store.LatentStore.content_hash`), ``exported`` (UTC time) and
``exported_by`` (this vaekit's version).
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vaekit import __version__
from vaekit.errors import UsageError
from vaekit.files import atomic_path, check_output_target

if TYPE_CHECKING:
    from vaekit.store import LatentStore

#: Output suffix -> format name.
FORMATS = {".h5ad": "anndata", ".parquet": "parquet", ".npz": "npz"}
#: The optional packages each format needs (installed by ``pip install 'vaekit[export]'``).
NEEDS = {"anndata": ("anndata",), "parquet": ("pyarrow",), "npz": ()}
#: Rows per block (Parquet row group, NPZ write) while streaming.
BLOCK_ROWS = 65536
#: Store attributes that describe the HDF5 file itself, not where the latents came from.
DROPPED_ATTRS = ("format", "format_version", "complete")
#: Prefix of an attribute column whose name is taken by a fixed column.
ATTRIBUTE_PREFIX = "attribute_"


def export_format(output: str | Path) -> str:
    """The format name for ``output``'s suffix; an unknown one is a UsageError."""
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        accepted = ", ".join(FORMATS)
        raise UsageError(
            f"cannot export to '{output}': unknown suffix '{suffix}'; name the output with "
            f"one of: {accepted}"
        )
    return FORMATS[suffix]


def check_export_packages(kind: str) -> None:
    """A UsageError naming the extra to install when ``kind`` needs a missing package."""
    for package in NEEDS[kind]:
        if importlib.util.find_spec(package) is None:
            raise UsageError(
                f"exporting to {kind} needs the {package} package: pip install 'vaekit[export]'"
            )


def export_latents(store_path: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    """Write the latent store ``store_path`` to ``output`` (``.h5ad``, ``.parquet`` or
    ``.npz``, by suffix) and return its path.

    The output follows vaekit's output rule: an existing file is replaced only with
    ``overwrite``, a link, folder or device never, and the file appears complete or
    not at all (written beside it, then renamed). Raises UsageError for an unknown
    suffix or a missing optional package, DataError for a store that cannot be read.
    """
    from vaekit.store import LatentStore

    kind = export_format(output)
    output = check_output_target(output, overwrite)
    check_export_packages(kind)
    writer = WRITERS[kind]
    with LatentStore.open(store_path) as store:
        provenance = store_provenance(store)
        with atomic_path(output) as tmp:
            writer(store, tmp, provenance)
            check_output_target(output, overwrite)  # a file made meanwhile is not clobbered
    return output


def store_provenance(store: LatentStore) -> dict[str, str | int | float | bool]:
    """Where the latents came from, as flat JSON-ready values (see the module docstring)."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in store.attrs.items():
        if key in DROPPED_ATTRS:
            continue
        if isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)
    out["source_store"] = str(store.path.resolve())
    out["source_content_hash"] = store.content_hash()
    out["exported"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out["exported_by"] = f"vaekit {__version__}"
    return out


def attribute_columns(attribute_names: list[str], latent_dim: int) -> list[str]:
    """Column names for the attributes: their own names, prefixed with ``attribute_``
    where a fixed column (``id``, ``label``, ``split``, ``mu_j``, ``logvar_j``) has it."""
    taken = {"id", "label", "split"}
    taken.update(f"{p}_{j}" for p in ("mu", "logvar") for j in range(latent_dim))
    return [ATTRIBUTE_PREFIX + name if name in taken else name for name in attribute_names]


def _blocks(store: LatentStore) -> Iterator[slice]:
    for start in range(0, store.n, BLOCK_ROWS):
        yield slice(start, min(start + BLOCK_ROWS, store.n))


# -- AnnData ---------------------------------------------------------------------------------


def write_anndata(store: LatentStore, path: Path, provenance: dict[str, Any]) -> None:
    """The store as an AnnData ``.h5ad`` file (layout in the module docstring). Holds the
    means and log-variances in memory (AnnData has no row-by-row writer)."""
    import anndata
    import pandas as pd

    ids = store.ids()
    unique = len(np.unique(ids)) == len(ids)
    index = pd.Index(ids if unique else np.arange(store.n).astype(str), name="id")
    obs = pd.DataFrame(index=index)
    if not unique:
        obs["id"] = ids
    labels, classes = store.labels(), store.class_names
    if labels is not None:
        names = classes or [str(c) for c in range(int(labels.max(initial=-1)) + 1)]
        obs["label"] = pd.Categorical.from_codes(_codes(labels, len(names)), categories=names)
    split, split_names = store.split(), store.split_names
    if split is not None and split_names:
        obs["split"] = pd.Categorical.from_codes(
            _codes(split, len(split_names)), categories=split_names
        )
    attributes, attribute_names = store.attributes(), store.attribute_names
    if attributes is not None and attribute_names:
        for column, values in zip(
            attribute_columns(attribute_names, store.latent_dim), attributes.T, strict=True
        ):
            obs[column] = values
    mu, logvar = store.read(slice(0, store.n))
    adata = anndata.AnnData(
        X=None,
        obs=obs,
        obsm={"X_vaekit": mu, "X_vaekit_logvar": logvar},
        uns={"vaekit": dict(provenance)},
    )
    adata.write_h5ad(path)


def _codes(values: np.ndarray, count: int) -> np.ndarray:
    """Category codes: values outside ``0 … count-1`` (−1: unlabelled) become missing."""
    codes = np.asarray(values, dtype=np.int64)
    return np.where((codes >= 0) & (codes < count), codes, -1)


# -- Parquet ---------------------------------------------------------------------------------


def write_parquet(store: LatentStore, path: Path, provenance: dict[str, Any]) -> None:
    """The store as a Parquet file, one row group per block (layout in the module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = store.latent_dim
    classes, split_names = store.class_names, store.split_names
    attribute_names = store.attribute_names or []
    has_labels, has_split = "labels" in store.file, "split" in store.file and bool(split_names)
    if has_labels and classes is None:
        classes = [str(c) for c in range(int(store.labels().max(initial=-1)) + 1)]
    fields = [pa.field("id", pa.string())]
    if has_labels:
        fields.append(pa.field("label", pa.dictionary(pa.int32(), pa.string())))
    if has_split:
        fields.append(pa.field("split", pa.dictionary(pa.int32(), pa.string())))
    columns = attribute_columns(attribute_names, d)
    fields += [pa.field(name, pa.bool_()) for name in columns]
    fields += [pa.field(f"{p}_{j}", pa.float32()) for p in ("mu", "logvar") for j in range(d)]
    schema = pa.schema(fields, metadata={"vaekit": json.dumps(provenance)})

    def categorical(values: np.ndarray, names: list[str]) -> Any:
        codes = _codes(values, len(names)).astype(np.int32)
        indices = pa.array(codes, mask=codes < 0, type=pa.int32())
        return pa.DictionaryArray.from_arrays(indices, pa.array(names, type=pa.string()))

    with pq.ParquetWriter(path, schema) as writer:
        for rows in _blocks(store):
            arrays: list[Any] = [pa.array(store.file["ids"].asstr()[rows], type=pa.string())]
            if has_labels:
                arrays.append(categorical(store.file["labels"][rows], classes or []))
            if has_split:
                arrays.append(categorical(store.file["split"][rows], split_names or []))
            if columns:
                block = store.file["attributes"][rows].astype(bool)
                arrays += [pa.array(block[:, a]) for a in range(len(columns))]
            mu, logvar = store.read(rows)
            arrays += [pa.array(mu[:, j]) for j in range(d)]
            arrays += [pa.array(logvar[:, j]) for j in range(d)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


# -- NPZ -------------------------------------------------------------------------------------


def write_npz(store: LatentStore, path: Path, provenance: dict[str, Any]) -> None:
    """The store as an uncompressed ``.npz`` archive (``numpy.load`` reads it); ``mu``
    and ``logvar`` are streamed block by block (layout in the module docstring)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in ("mu", "logvar"):
            dataset = store.file[name]
            _stream_array(
                archive, name, dataset.shape, dataset.dtype, lambda r, n=name: store.file[n][r]
            )
        whole: dict[str, np.ndarray | None] = {
            "ids": store.ids(),
            "labels": store.labels(),
            "class_names": _strings(store.class_names),
            "attributes": store.attributes(),
            "attribute_names": _strings(store.attribute_names),
            "split": store.split(),
            "split_names": _strings(store.split_names),
            "provenance": np.array(json.dumps(provenance)),
        }
        for name, array in whole.items():
            if array is not None:
                with archive.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)


def _strings(values: list[str] | None) -> np.ndarray | None:
    return None if values is None else np.array(values, dtype=str)


def _stream_array(
    archive: zipfile.ZipFile,
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    read: Callable[[slice], np.ndarray],
) -> None:
    """Write ``name.npy`` of ``shape`` into ``archive`` from blocks of rows ``read(rows)``:
    the .npy header for the whole array, then each block's C-order bytes."""
    dtype = np.dtype(dtype)
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": tuple(int(s) for s in shape),
    }
    with archive.open(f"{name}.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for start in range(0, shape[0], BLOCK_ROWS):
            block = read(slice(start, min(start + BLOCK_ROWS, shape[0])))
            fh.write(np.ascontiguousarray(block, dtype=dtype).tobytes())


WRITERS: dict[str, Callable[[LatentStore, Path, dict[str, Any]], None]] = {
    "anndata": write_anndata,
    "parquet": write_parquet,
    "npz": write_npz,
}

__all__ = [
    "FORMATS",
    "attribute_columns",
    "export_format",
    "export_latents",
    "store_provenance",
    "write_anndata",
    "write_npz",
    "write_parquet",
]
