"""A latent store as a ``torch.utils.data.Dataset``: train the next model on the latents.

Each item is a dict of tensors: ``z`` (D float32: the posterior mean, or a fresh draw
z = μ + σ·ε), ``index`` (the store row), ``hflip`` (whether the row is a mirrored
image) and, when the store has them, ``label`` (int64 class id, -1 unlabelled) and
``attributes`` (A bool). ``DataLoader``'s default collation stacks them.

Memory is flat in N: rows are read from disk when asked for (a batch at a time when
the ``DataLoader`` batches: ``__getitems__``), through an HDF5 chunk cache of bounded
size; nothing reads the whole of ``mu`` or ``logvar``. The file is opened lazily, in
the process that reads it: a data set pickled into ``DataLoader`` workers (or
inherited by a fork) opens its own handle there, never sharing or pickling an open one.

Draws are seeded: row i's ε in epoch e is a function of (seed, e, i) alone
(:func:`counter_normal`, computed for a whole batch at once), so the same seed gives
the same sequence whatever the batch size, order, worker count or
sampler, and :meth:`LatentDataset.set_epoch` (as with ``DistributedSampler``) gives
other draws each epoch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from vaekit.store import LatentStore, _as_indices, latent_stats

#: HDF5 chunk cache per open dataset: decompressed chunks kept for random reads (a
#: store's chunks are about 1 MiB; a shuffled epoch touches every chunk each batch).
CACHE_BYTES = 16 << 20


class LatentDataset(Dataset):
    """Rows of the latent store at ``path`` as a map-style torch data set.

    ``draw``: False yields the posterior mean μ; True a fresh draw μ + σ·ε per access,
    seeded by ``seed``, the epoch (:meth:`set_epoch`) and the row. ``standardize``:
    subtract the per-dimension mean and divide by the standard deviation stored by
    ``encode`` (of μ, or of draws when ``draw``; a dimension with no spread is left
    unscaled); a store from before vaekit 0.6 has its statistics computed once, here.
    ``rows``: only these store rows (e.g. ``LatentStore.select(...)``), in this order.
    ``cache_bytes``: the HDF5 chunk cache per dataset and process.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        draw: bool = False,
        seed: int = 0,
        standardize: bool = False,
        rows: np.ndarray | Sequence[int] | None = None,
        cache_bytes: int = CACHE_BYTES,
    ):
        self.path = Path(path)
        self.draw, self.seed, self.standardize = bool(draw), int(seed), bool(standardize)
        self.cache_bytes = int(cache_bytes)
        self.epoch = 0
        with LatentStore.open(self.path) as store:  # checked once here, then closed
            self.store_rows, self.latent_dim = store.n, store.latent_dim
            self.class_names = store.class_names
            self.attribute_names = store.attribute_names
            self.has_labels = "labels" in store.file
            self.has_attributes = "attributes" in store.file
            self.has_hflip = store.has_hflip
            self.offset = np.zeros(self.latent_dim, np.float32)
            self.scale = np.ones(self.latent_dim, np.float32)
            if standardize:
                stats = latent_stats(store)
                std = stats.z_std if draw else stats.std
                self.offset = stats.mean.astype(np.float32)
                self.scale = np.where(std > 0, std, 1.0).astype(np.float32)
        self.rows = None if rows is None else _as_indices(rows, self.store_rows)
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.store_rows if self.rows is None else len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s draws (call before each epoch's loop, as with
        ``DistributedSampler``; workers see it when the ``DataLoader`` starts them, so
        not with ``persistent_workers=True``)."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None  # an open HDF5 handle is never pickled
        return state

    def _open(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            # a handle inherited through fork is left alone: this process opens its own
            self._file = h5py.File(self.path, "r", rdcc_nbytes=self.cache_bytes, rdcc_nslots=10007)
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        """Close this process's handle (reopened on the next access)."""
        if self._file is not None and self._pid == os.getpid() and self._file.id.valid:
            self._file.close()
        self._file, self._pid = None, None

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """The items at ``indices`` (what ``DataLoader`` asks for one batch), read together."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"index out of range for a LatentDataset of {len(self)} rows")
        index = np.where(index < 0, index + len(self), index)
        rows = index if self.rows is None else self.rows[index]
        f = self._open()
        z = _read(f["mu"], rows)
        if self.draw:
            sigma = np.exp(0.5 * _read(f["logvar"], rows))
            z = z + sigma * self.noise(rows)
        if self.standardize:
            z = (z - self.offset) / self.scale
        z = z.astype(np.float32, copy=False)
        columns: dict[str, Any] = {
            "z": torch.from_numpy(z),
            "index": torch.from_numpy(rows.astype(np.int64)),
            "hflip": torch.from_numpy(
                _read(f["hflip"], rows).astype(bool)
                if self.has_hflip
                else np.zeros(len(rows), bool)
            ),
        }
        if self.has_labels:
            columns["label"] = torch.from_numpy(_read(f["labels"], rows).astype(np.int64))
        if self.has_attributes:
            columns["attributes"] = torch.from_numpy(_read(f["attributes"], rows).astype(bool))
        return [{k: v[j] for k, v in columns.items()} for j in range(len(rows))]

    def noise(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), D) float32 ε of ``rows`` in this epoch: a function of (seed,
        epoch, row, dimension) alone (:func:`counter_normal`), for a whole batch at once."""
        return counter_normal(self.seed, self.epoch, rows, self.latent_dim)


_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 whose outputs look independent."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def counter_normal(seed: int, epoch: int, rows: np.ndarray, dim: int) -> np.ndarray:
    """(len(rows), dim) float32 standard normal deviates, each a pure function of (seed,
    epoch, row, dimension): two splitmix64 hashes of its counter give two uniforms, Box and
    Muller turn them into one normal. Vectorised (no generator per row), and the same
    whatever the batch, order, worker count or sampler."""
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(epoch))
        counter = (np.asarray(rows, dtype=np.uint64)[:, None] * np.uint64(dim)) + np.arange(
            dim, dtype=np.uint64
        )
        base = (counter * np.uint64(2)) ^ key
        bits1, bits2 = _mix(base) & _MASK, _mix(base + np.uint64(1)) & _MASK
    # 53-bit uniforms: u1 in (0, 1] (log never sees 0), u2 in [0, 1)
    u1 = ((bits1 >> np.uint64(11)).astype(np.float64) + 1.0) / 2.0**53
    u2 = (bits2 >> np.uint64(11)).astype(np.float64) / 2.0**53
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


def _read(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``dataset``'s ``rows`` in the order given: the distinct rows are read in increasing
    order (one selection, each chunk decompressed once into the chunk cache)."""
    if not len(rows):
        return np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)
    unique, inverse = np.unique(rows, return_inverse=True)
    if len(unique) == unique[-1] - unique[0] + 1:  # a contiguous run: one slice
        block = dataset[int(unique[0]) : int(unique[-1]) + 1]
    else:
        block = dataset[unique]
    return block[inverse]
