"""The HDF5 latent store: a streaming writer, a reader, label queries.

A store (``latents.h5``) holds one row per encoded image (layout in
docs/formats.md): ``mu`` and ``logvar`` (N x D float32), optionally ``samples``
(N x K x D), ``labels`` + ``class_names``, ``attributes`` (N x A bool) +
``attribute_names``, ``ids``, ``split`` + ``split_names``, ``hflip`` (N bool: a
mirrored image's row), and a ``stats`` group of per-dimension statistics
(:mod:`vaekit.latent_stats`). Strings are UTF-8
variable-length, so plain h5py (or any HDF5 reader) can read everything; the
file attributes say what made it and whether it is complete.

The writer buffers rows into whole chunks and writes each chunk once (a
compressed chunk written piecemeal would be recompressed per batch), so memory
is one chunk per dataset whatever N is. It folds every batch into the store's
per-dimension statistics as it goes, so they cost no second pass.

:class:`vaekit.latent_dataset.LatentDataset` is a torch data set over a store (in
its own module: importing this one does not import torch).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vaekit.config import MAX_LATENT_DIM
from vaekit.errors import DataError, UsageError
from vaekit.latent_stats import LatentStats
from vaekit.query import label_counts, parse_query
from vaekit.version import __version__

FORMAT = "vaekit-latents"
FORMAT_VERSION = 1
COMPRESSIONS = ("gzip", "lzf", "none")
CHUNK_BYTES = 1 << 20  # about 1 MiB per chunk of the widest dataset
GZIP_LEVEL = 4

#: datasets with one row per image, in the order they are hashed and joined
ROW_DATASETS = ("mu", "logvar", "samples", "labels", "attributes", "ids", "split", "hflip")
NAME_DATASETS = ("class_names", "attribute_names", "split_names")
#: the per-dimension arrays of the ``stats`` group (see vaekit.latent_stats)
STATS_ARRAYS = ("mean", "std", "z_mean", "z_std")

Rows = slice | np.ndarray | Sequence[int]

#: Most names a name list (classes, attributes, splits) may hold.
MAX_NAMES = 100_000
#: A dataset may declare at most this many times the bytes it stores (latents compress by
#: about 1.1x; a declared size far beyond what the file holds is a crafted header).
MAX_EXPANSION = 1000


def compression_options(compression: str) -> dict[str, Any]:
    """h5py dataset keywords for ``gzip`` (level 4), ``lzf`` or ``none`` (shuffled when on)."""
    if compression not in COMPRESSIONS:
        raise UsageError(
            f"unknown compression '{compression}'; choose one of: {', '.join(COMPRESSIONS)}"
        )
    if compression == "none":
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL, "shuffle": True}
    return {"compression": "lzf", "shuffle": True}


def _json_attr(value: Any) -> Any:
    """Dicts and lists become JSON strings; None becomes ''; the rest is stored as is."""
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


class LatentStoreWriter:
    """Write a latent store row block by row block.

    ``n`` rows are declared up front; :meth:`append` takes batches in row order
    and :meth:`finish` checks that all ``n`` arrived and sets ``complete``. A
    writer closed without :meth:`finish` (an exception inside ``with``) leaves a
    file whose ``complete`` attribute is false, which every reader refuses.
    """

    def __init__(
        self,
        path: str | Path,
        n: int,
        latent_dim: int,
        *,
        class_names: Sequence[str] | None = None,
        labels: bool = False,
        attribute_names: Sequence[str] | None = None,
        samples: int = 0,
        split_names: Sequence[str] | None = None,
        compression: str = "gzip",
        attrs: dict[str, Any] | None = None,
        chunk_rows: int | None = None,
        hflip: bool = False,
    ):
        self.path = Path(path)
        self.n, self.latent_dim, self.samples = int(n), int(latent_dim), int(samples)
        options = compression_options(compression)
        row_bytes = 4 * latent_dim * max(1, samples)
        rows = chunk_rows or max(64, CHUNK_BYTES // row_bytes)
        self.chunk_rows = max(1, min(rows, self.n or 1))
        # no chunk cache: whole chunks are written once, and a cache the size of a chunk
        # makes HDF5's memory grow with the number of chunks written
        self.file = h5py.File(self.path, "w", track_order=True, rdcc_nbytes=0)
        strings = h5py.string_dtype("utf-8")
        shapes: dict[str, tuple[tuple[int, ...], Any]] = {
            "mu": ((latent_dim,), np.float32),
            "logvar": ((latent_dim,), np.float32),
        }
        if samples:
            shapes["samples"] = ((samples, latent_dim), np.float32)
        if labels or class_names is not None:
            shapes["labels"] = ((), np.int64)
        if attribute_names is not None:
            shapes["attributes"] = ((len(attribute_names),), np.bool_)
        shapes["ids"] = ((), strings)
        if split_names is not None:
            shapes["split"] = ((), np.uint8)
        if hflip:
            shapes["hflip"] = ((), np.bool_)
        self.datasets: dict[str, h5py.Dataset] = {}
        self.buffers: dict[str, np.ndarray] = {}
        for name, (row_shape, dtype) in shapes.items():
            compress = options if self.n else {}
            self.datasets[name] = self.file.create_dataset(
                name,
                shape=(self.n, *row_shape),
                dtype=dtype,
                chunks=(self.chunk_rows, *row_shape) if self.n else None,
                **compress,
            )
            buffer_dtype = object if dtype is strings else dtype
            self.buffers[name] = np.empty((self.chunk_rows, *row_shape), dtype=buffer_dtype)
        for name, values in (
            ("class_names", class_names),
            ("attribute_names", attribute_names),
            ("split_names", split_names),
        ):
            if values is not None:
                self.file.create_dataset(name, data=list(values), dtype=strings)
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "vaekit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": False,
            "n": self.n,
            "latent_dim": self.latent_dim,
            "samples": self.samples,
            "compression": compression,
        }
        for key, value in {**header, **(attrs or {})}.items():
            self.file.attrs[key] = _json_attr(value)
        self.written = 0  # rows on disk
        self.filled = 0  # rows waiting in the buffers
        self.stats = LatentStats.empty(self.latent_dim)

    def __enter__(self) -> LatentStoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(
        self,
        mu: np.ndarray,
        logvar: np.ndarray,
        *,
        samples: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        attributes: np.ndarray | None = None,
        ids: np.ndarray | Sequence[str] | None = None,
        split: np.ndarray | None = None,
        hflip: np.ndarray | None = None,
    ) -> None:
        """Add the next ``len(mu)`` rows; every per-row dataset the store has must be given."""
        given = {
            "mu": mu,
            "logvar": logvar,
            "samples": samples,
            "labels": labels,
            "attributes": attributes,
            "ids": ids,
            "split": split,
            "hflip": hflip,
        }
        count = len(mu)
        if self.written + self.filled + count > self.n:
            raise DataError(
                f"latent store {self.path} was declared with {self.n} rows; "
                f"{self.written + self.filled + count} were given"
            )
        arrays = {}
        for name in self.datasets:
            value = given[name]
            if value is None:
                raise DataError(f"latent store {self.path}: batch is missing '{name}'")
            if len(value) != count:
                raise DataError(
                    f"latent store {self.path}: '{name}' has {len(value)} rows, mu {count}"
                )
            arrays[name] = value
        for name in ("mu", "logvar", "samples"):
            if name in arrays and not np.isfinite(arrays[name]).all():
                first = (
                    self.written
                    + self.filled
                    + int(
                        np.flatnonzero(
                            ~np.isfinite(np.asarray(arrays[name]).reshape(count, -1)).all(1)
                        )[0]
                    )
                )
                raise DataError(
                    f"the model gave NaN or infinite latents ('{name}' of row {first}); "
                    f"latent store {self.path} is not written: use a run whose training "
                    "did not diverge"
                )
        self.stats.update(arrays["mu"], arrays["logvar"])
        start = 0
        while start < count:
            take = min(count - start, self.chunk_rows - self.filled)
            for name, value in arrays.items():
                self.buffers[name][self.filled : self.filled + take] = value[start : start + take]
            self.filled += take
            start += take
            if self.filled == self.chunk_rows:
                self._flush()

    def _flush(self) -> None:
        if not self.filled:
            return
        stop = self.written + self.filled
        for name, dataset in self.datasets.items():
            dataset[self.written : stop] = self.buffers[name][: self.filled]
        self.written, self.filled = stop, 0

    def finish(self, mark_complete: bool = True) -> None:
        """Write what is buffered, check every row arrived, mark the file complete (unless
        ``mark_complete`` is false: a part that is only useful once joined), close it."""
        self._flush()
        if self.written != self.n:
            raise DataError(
                f"latent store {self.path}: {self.written} of {self.n} rows were written"
            )
        if self.n:
            group = self.file.create_group("stats")
            group.attrs["count"] = self.stats.count
            for name, values in self.stats.as_arrays().items():
                group.create_dataset(name, data=values)
        self.file.attrs["complete"] = bool(mark_complete)
        self.file.flush()
        self.close()

    def close(self) -> None:
        """Close the file (incomplete unless :meth:`finish` ran)."""
        if self.file.id.valid:
            self.file.close()


class LatentStore:
    """A latent store opened for reading (use :meth:`open`; also a context manager)."""

    def __init__(self, path: Path, file: h5py.File):
        self.path = path
        self.file = file
        self._cache: dict[str, Any] = {}

    @classmethod
    def open(cls, path: str | Path, allow_incomplete: bool = False) -> LatentStore:
        """Open ``path``; a file that is not a complete vaekit store raises DataError.

        ``allow_incomplete=True`` opens an unfinished store too (for ``inspect``).
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(
                f"no latent store at '{path}'; write one with `vaekit encode DATA -o {path}`"
            )
        try:
            file = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(
                f"'{path}' is not a readable HDF5 file ({exc}); a latent store is written by "
                "`vaekit encode`"
            ) from None
        store = cls(path, file)
        try:
            store._validate(allow_incomplete)
        except DataError:
            file.close()
            raise
        except Exception as exc:  # h5py reports damaged objects as KeyError, OSError, ...
            file.close()
            raise DataError(
                f"'{path}' is a damaged HDF5 file ({exc}); if an encode was killed while "
                "writing it, delete it and run `vaekit encode` again"
            ) from None
        return store

    def _validate(self, allow_incomplete: bool) -> None:
        path, attrs = self.path, self.attrs
        kind = attrs.get("format")
        if kind != FORMAT:
            raise DataError(
                f"'{path}' is an HDF5 file but not a vaekit latent store (its 'format' attribute "
                f"is {kind!r}, not '{FORMAT}'); write one with `vaekit encode`"
            )
        if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
            raise DataError(
                f"'{path}' is a version {attrs['format_version']} latent store; this vaekit reads "
                f"up to version {FORMAT_VERSION}: upgrade vaekit"
            )
        if not allow_incomplete and not self.complete:
            raise DataError(
                f"'{path}' is an incomplete latent store: the encode that wrote it did not "
                "finish; run `vaekit encode` again (with --overwrite)"
            )
        if "mu" not in self.file or "logvar" not in self.file:
            raise DataError(f"'{path}' is a damaged latent store: it has no 'mu'/'logvar'")
        self._validate_layout()

    def _validate_layout(self) -> None:
        """Shapes, dtypes and declared sizes of every dataset, checked before any is read,
        so a store written by anything but ``vaekit encode`` is one line, not a traceback
        or an allocation of whatever its header declares."""
        path, f = self.path, self.file

        def bad(what: str) -> DataError:
            return DataError(
                f"'{path}' is not a valid latent store: {what}; write it with `vaekit encode`"
            )

        for name in ROW_DATASETS + NAME_DATASETS:
            if name in f and not isinstance(f[name], h5py.Dataset):
                raise bad(f"'{name}' is not a dataset")
        mu, logvar = f["mu"], f["logvar"]
        if mu.ndim != 2 or mu.dtype.kind != "f":
            raise bad(f"'mu' must be a 2-D float array, it is {mu.ndim}-D {mu.dtype}")
        if logvar.shape != mu.shape or logvar.dtype.kind != "f":
            raise bad(f"'logvar' has shape {logvar.shape} {logvar.dtype}, 'mu' {mu.shape}")
        n, d = mu.shape
        if not 1 <= d <= MAX_LATENT_DIM:
            raise bad(f"'mu' has {d} latent dimensions (vaekit writes 1 to {MAX_LATENT_DIM:,})")
        expected = {
            "samples": (3, "f"),
            "labels": (1, "iu"),
            "attributes": (2, "biu"),
            "ids": (1, None),
            "split": (1, "iu"),
            "hflip": (1, "b"),
        }
        for name, (ndim, kinds) in expected.items():
            if name not in f:
                continue
            ds = f[name]
            if ds.ndim != ndim or ds.shape[0] != n:
                raise bad(f"'{name}' has shape {ds.shape}; it needs {ndim}-D with {n:,} rows")
            if kinds is not None and ds.dtype.kind not in kinds:
                raise bad(f"'{name}' holds {ds.dtype} values")
            if kinds is None and h5py.check_string_dtype(ds.dtype) is None:
                raise bad(f"'{name}' does not hold strings")
        if "samples" in f and f["samples"].shape[2] != d:
            raise bad(f"'samples' has {f['samples'].shape[2]} dimensions, 'mu' {d}")
        for name in NAME_DATASETS:
            if name not in f:
                continue
            ds = f[name]
            if ds.ndim != 1 or ds.shape[0] > MAX_NAMES or h5py.check_string_dtype(ds.dtype) is None:
                raise bad(f"'{name}' must be a list of at most {MAX_NAMES:,} strings")
        for name in ROW_DATASETS:
            if name in f:
                _check_declared_size(f[name], bad)
        if "stats" in f:
            _validate_stats(f["stats"], n, d, bad)
        try:
            config = json.loads(self.attrs.get("model_config") or "{}")
        except (TypeError, ValueError, RecursionError):
            raise bad("its 'model_config' attribute is not JSON") from None
        if not isinstance(config, dict):
            raise bad("its 'model_config' attribute is not a JSON object")

    def __enter__(self) -> LatentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        if self.file.id.valid:
            self.file.close()

    def __repr__(self) -> str:
        return f"LatentStore('{self.path}', n={self.n}, latent_dim={self.latent_dim})"

    # -- description ---------------------------------------------------------------------------

    @property
    def attrs(self) -> dict[str, Any]:
        """The file attributes (strings decoded; JSON values left as strings)."""
        if "attrs" not in self._cache:
            out = {}
            for key, value in self.file.attrs.items():
                if isinstance(value, bytes):
                    value = value.decode()
                elif isinstance(value, np.generic):
                    value = value.item()
                out[key] = value
            self._cache["attrs"] = out
        return self._cache["attrs"]

    @property
    def complete(self) -> bool:
        """Whether the encode that wrote this file finished (its ``complete`` attribute is
        the boolean true; a string such as ``"no"`` is not)."""
        return self.attrs.get("complete", False) is True

    @property
    def n(self) -> int:
        """Number of rows (encoded images)."""
        return int(self.file["mu"].shape[0])

    @property
    def latent_dim(self) -> int:
        """Latent size D."""
        return int(self.file["mu"].shape[1])

    @property
    def model_config(self) -> dict[str, Any]:
        """The encoding model's config (``vaekit.model.ModelConfig`` as a dict)."""
        text = self.attrs.get("model_config") or "{}"
        return json.loads(text)

    @property
    def num_samples(self) -> int:
        """K, the posterior draws per row in ``samples`` (0: none stored)."""
        return int(self.file["samples"].shape[1]) if "samples" in self.file else 0

    def _names(self, key: str) -> list[str] | None:
        if key not in self.file:
            return None
        return [str(s) for s in self.file[key].asstr()[()]]

    @property
    def class_names(self) -> list[str] | None:
        """Name of each class id, or None."""
        return self._names("class_names")

    @property
    def attribute_names(self) -> list[str] | None:
        """Name of each attribute column, or None."""
        return self._names("attribute_names")

    @property
    def split_names(self) -> list[str] | None:
        """Name of each split index (``train``, ``val``, ``test``), or None."""
        return self._names("split_names")

    def labels(self) -> np.ndarray | None:
        """(N,) int64 class ids (-1: unlabelled), or None when the data had no classes."""
        return self.file["labels"][()] if "labels" in self.file else None

    def attributes(self) -> np.ndarray | None:
        """(N, A) bool attributes, or None."""
        return self.file["attributes"][()].astype(bool) if "attributes" in self.file else None

    def ids(self) -> np.ndarray:
        """(N,) str: the images' relative paths or indices."""
        return np.asarray(self.file["ids"].asstr()[()], dtype=str)

    def split(self) -> np.ndarray | None:
        """(N,) uint8 index into :attr:`split_names`, or None."""
        return self.file["split"][()] if "split" in self.file else None

    @property
    def has_hflip(self) -> bool:
        """Whether the encode also stored mirrored images (``encode(hflip=True)``)."""
        return "hflip" in self.file

    def hflip(self, rows: Rows | None = None) -> np.ndarray:
        """(N,) bool (or the ``rows`` asked): true where the row is a horizontally mirrored
        image. A store written without ``hflip`` (and any store before vaekit 0.6) is all
        false."""
        if rows is None:
            rows = slice(0, self.n)
        if "hflip" in self.file:
            return read_rows(self.file["hflip"], rows).astype(bool)
        count = len(range(*rows.indices(self.n))) if isinstance(rows, slice) else None
        return np.zeros(len(_as_indices(rows, self.n)) if count is None else count, dtype=bool)

    def stats(self) -> LatentStats | None:
        """The per-dimension statistics ``encode`` stored (:mod:`vaekit.latent_stats`), or
        None for a store written before vaekit 0.6 (:func:`compute_stats` makes them)."""
        if "stats" not in self.file:
            return None
        group = self.file["stats"]
        return LatentStats.from_arrays(
            int(group.attrs["count"]), group["mean"][()], group["std"][()], group["z_std"][()]
        )

    def label_counts(self) -> dict[str, dict[str, int]]:
        """Rows per class and rows where each attribute is true."""
        return label_counts(
            self.labels(), self.class_names, self.attributes(), self.attribute_names
        )

    # -- rows ---------------------------------------------------------------------------------

    def read(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, logvar)`` of ``rows`` (a slice, an index array in any order, or a bool mask)."""
        return read_rows(self.file["mu"], rows), read_rows(self.file["logvar"], rows)

    def read_samples(self, rows: Rows) -> np.ndarray:
        """(len(rows), K, D) posterior draws stored with ``--samples K``."""
        if "samples" not in self.file:
            raise DataError(
                f"'{self.path}' holds no posterior samples; encode with --samples K to store them"
            )
        return read_rows(self.file["samples"], rows)

    def iter_chunks(
        self, rows: Rows | None = None, chunk_size: int = 65536
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(mu, logvar)`` float32 blocks of at most ``chunk_size`` rows, in order
        (all rows, or ``rows``): memory stays at one block whatever N is."""
        if rows is None:
            rows = slice(0, self.n)
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.n)
            if step == 1:
                for s in range(start, stop, chunk_size):
                    yield self.read(slice(s, min(s + chunk_size, stop)))
                return
            rows = np.arange(start, stop, step)
        rows = _as_indices(rows, self.n)
        for s in range(0, len(rows), chunk_size):
            yield self.read(rows[s : s + chunk_size])

    def select(self, query_terms: Sequence[str], split: str | None = None) -> np.ndarray:
        """Sorted row indices that satisfy the label query (see :mod:`vaekit.query`) and,
        when given, lie in ``split`` (``train``, ``val``, ``test``; ``all``/None: any)."""
        mask = parse_query(list(query_terms)).mask(self)
        if split not in (None, "all"):
            names = self.split_names or []
            if split not in names:
                raise UsageError(
                    f"unknown split '{split}' for '{self.path}'; choose one of: "
                    f"all, {', '.join(names)}"
                )
            mask &= self.split() == names.index(split)
        return np.flatnonzero(mask)

    def content_hash(self) -> str:
        """SHA-256 (hex) of the store's arrays: every dataset's name, dtype, shape and values,
        in a fixed order, read block by block. Two files holding the same arrays hash alike
        whatever their compression, chunking or creation time."""
        if "hash" not in self._cache:
            digest = hashlib.sha256()
            for name in (*ROW_DATASETS, *NAME_DATASETS):
                if name in self.file:
                    _hash_dataset(digest, name, self.file[name])
            self._cache["hash"] = digest.hexdigest()
        return self._cache["hash"]

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``vaekit inspect`` shows)."""
        attrs = self.attrs
        return {
            "path": str(self.path),
            "complete": self.complete,
            "n": self.n,
            "latent_dim": self.latent_dim,
            "samples": self.num_samples,
            "labels": self.label_counts(),
            "splits": self.split_counts(),
            "model": self.model_config,
            "run_dir": attrs.get("run_dir"),
            "weights_sha256": attrs.get("weights_sha256"),
            "dataset": {
                "source": attrs.get("dataset_source"),
                "location": attrs.get("dataset_location"),
                "fingerprint": attrs.get("dataset_fingerprint"),
            },
            "vaekit_version": attrs.get("vaekit_version"),
            "created": attrs.get("created"),
            "compression": attrs.get("compression"),
            "hflip_rows": int(self.hflip().sum()) if self.has_hflip else 0,
            "data_sha256": attrs.get("data_sha256"),
        }

    def split_counts(self) -> dict[str, int]:
        """Rows per split name."""
        split, names = self.split(), self.split_names
        if split is None or not names:
            return {}
        counts = np.bincount(split, minlength=len(names))
        return {name: int(c) for name, c in zip(names, counts, strict=False)}


def _validate_stats(group: Any, n: int, d: int, bad: Any) -> None:
    """The ``stats`` group: a row count equal to N and four finite (D,) float arrays."""
    if not isinstance(group, h5py.Group):
        raise bad("'stats' is not a group")
    count = group.attrs.get("count")
    if not isinstance(count, (int, np.integer)) or int(count) != n:
        shown = int(count) if isinstance(count, (int, np.integer)) else repr(count)
        raise bad(f"'stats' counts {shown} rows, the store has {n:,}")
    for name in STATS_ARRAYS:
        ds = group.get(name)
        if not isinstance(ds, h5py.Dataset) or ds.shape != (d,) or ds.dtype.kind != "f":
            raise bad(f"'stats/{name}' must be {d} floats")
        if not np.isfinite(ds[()]).all():
            raise bad(f"'stats/{name}' holds NaN or infinite values")


def _check_declared_size(dataset: h5py.Dataset, bad: Any) -> None:
    """A DataError (from ``bad``) when ``dataset`` declares far more bytes than the file
    stores for it: reading it would allocate what a crafted header claims."""
    declared = dataset.size * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    if declared > MAX_EXPANSION * stored + (64 << 20):
        raise bad(
            f"'{dataset.name.lstrip('/')}' declares {declared:,} bytes but the file holds "
            f"{stored:,}"
        )


def _as_indices(rows: np.ndarray | Sequence[int], n: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise UsageError(f"a row mask must have shape ({n},), got {rows.shape}")
        return np.flatnonzero(rows)
    rows = rows.astype(np.int64, copy=False).reshape(-1)
    if len(rows) and (rows.min() < -n or rows.max() >= n):
        raise UsageError(f"row index out of range for a store of {n} rows")
    return np.where(rows < 0, rows + n, rows)


def read_rows(dataset: h5py.Dataset, rows: Rows, max_rows: int = 65536) -> np.ndarray:
    """Rows of ``dataset`` in the order asked, reading each needed chunk once: runs of
    needed chunks are read as contiguous slices of at most ``max_rows`` rows."""
    n = dataset.shape[0]
    if isinstance(rows, slice):
        return dataset[rows]
    index = _as_indices(rows, n)
    out = np.empty((len(index), *dataset.shape[1:]), dtype=dataset.dtype)
    if not len(index):
        return out
    order = np.argsort(index, kind="stable")
    ordered = index[order]
    chunk = dataset.chunks[0] if dataset.chunks else max_rows
    per_block = max(1, max_rows // chunk)
    runs: list[tuple[int, int]] = []  # (first chunk, last chunk) of adjacent needed chunks
    for c in np.unique(ordered // chunk).tolist():
        if runs and c == runs[-1][1] + 1 and c - runs[-1][0] < per_block:
            runs[-1] = (runs[-1][0], c)
        else:
            runs.append((c, c))
    for first, last in runs:
        lo, hi = first * chunk, min(n, (last + 1) * chunk)
        i, j = np.searchsorted(ordered, [lo, hi])
        block = dataset[lo:hi]
        out[order[i:j]] = block[ordered[i:j] - lo]
    return out


def _hash_dataset(digest: Any, name: str, dataset: h5py.Dataset, block: int = 65536) -> None:
    is_string = h5py.check_string_dtype(dataset.dtype) is not None
    dtype = "utf-8" if is_string else np.dtype(dataset.dtype).newbyteorder("<").str
    digest.update(f"{name}|{dtype}|{dataset.shape}|".encode())
    for start in range(0, dataset.shape[0] if dataset.shape else 1, block):
        values = dataset[start : start + block] if dataset.shape else dataset[()]
        if is_string:
            for value in np.atleast_1d(values):
                data = value if isinstance(value, bytes) else str(value).encode()
                digest.update(len(data).to_bytes(8, "little") + data)
        else:
            digest.update(np.ascontiguousarray(values, dtype=dtype).tobytes())


def join_stores(
    parts: Sequence[str | Path],
    output: str | Path,
    compression: str = "gzip",
    attrs: dict[str, Any] | None = None,
    allow_incomplete: bool = False,
) -> Path:
    """Concatenate stores (the shards of one encode, in order) into ``output``, block by
    block; file attributes come from the first part, updated with ``attrs``. Parts must be
    complete unless ``allow_incomplete`` (encode's parts, whose rows it has checked)."""
    opened = [LatentStore.open(p, allow_incomplete=allow_incomplete) for p in parts]
    try:
        first = opened[0]
        header = {
            k: v
            for k, v in first.attrs.items()
            if k
            not in (
                "format",
                "format_version",
                "vaekit_version",
                "created",
                "complete",
                "n",
                "latent_dim",
                "samples",
                "compression",
            )
        }
        header.update(attrs or {})
        f0 = first.file
        writer = LatentStoreWriter(
            output,
            sum(s.n for s in opened),
            first.latent_dim,
            class_names=first.class_names,
            labels="labels" in f0,
            attribute_names=first.attribute_names,
            samples=first.num_samples,
            split_names=first.split_names,
            compression=compression,
            attrs=header,
            hflip="hflip" in f0,
        )
        with writer:
            for store in opened:
                f = store.file
                for start in range(0, store.n, writer.chunk_rows * 4):
                    rows = slice(start, min(store.n, start + writer.chunk_rows * 4))
                    writer.append(
                        f["mu"][rows],
                        f["logvar"][rows],
                        samples=f["samples"][rows] if "samples" in f else None,
                        labels=f["labels"][rows] if "labels" in f else None,
                        attributes=f["attributes"][rows] if "attributes" in f else None,
                        ids=f["ids"].asstr()[rows] if "ids" in f else None,
                        split=f["split"][rows] if "split" in f else None,
                        hflip=f["hflip"][rows] if "hflip" in f else None,
                    )
            writer.finish()
    finally:
        for store in opened:
            store.close()
    return Path(output)


def compute_stats(store: LatentStore, rows: Rows | None = None) -> LatentStats:
    """The per-dimension statistics of ``store``'s rows (all, or ``rows``: a split, a
    query's subset), streamed block by block: for a store without stored ones, or a
    subset of one."""
    stats = LatentStats.empty(store.latent_dim)
    for mu, logvar in store.iter_chunks(rows):
        stats.update(mu, logvar)
    return stats


def latent_stats(store: LatentStore) -> LatentStats:
    """The store's per-dimension statistics: the stored ones, or (a store written before
    vaekit 0.6) computed by streaming through it."""
    return store.stats() or compute_stats(store)


def remove_quietly(path: str | Path) -> None:
    """Delete ``path`` if it exists (cleanup that must not hide the original error)."""
    try:
        os.unlink(path)
    except OSError:
        pass
