"""Whether an existing latent store is what ``encode`` would write now.

A store records what it was made from (file attributes, docs/formats.md):
``data_sha256`` (SHA-256 of every image, id, label, attribute and split row the
encode read, after the run's preprocessing), ``weights_sha256`` (the model's
weights file), ``dataset_source`` / ``dataset_location`` and ``encode_options``
(split, compression, posterior draws and their seed, mirrored images).

Against what an encode is about to do, an existing output is:

- ``up-to-date``: all of those equal; nothing needs writing;
- ``stale``: the same request (same data location and options) whose inputs changed:
  an image, a label, the model's weights. Encoding again is the update;
- refused (:class:`~vaekit.errors.OutputExistsError`): anything else, a file that is not
  a complete store with these records, a store of other data or other options, which
  only ``--overwrite`` replaces.

``vaekit.data.fingerprint_arrays`` (the dataset's short fingerprint) hashes a strided
sample of at most about 4,096 rows: on 60,000 images it reads one row in 14, so it
misses a single changed image 13 times in 14. The content hash here reads every row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaekit.data import ImageDataset
from vaekit.errors import DataError, OutputExistsError

#: rows per hashed block: about 8 MiB of 28x28 images
BLOCK_BYTES = 8 << 20


def data_sha256(data: ImageDataset, rows: np.ndarray | None = None) -> str:
    """SHA-256 (hex) of everything an encode of ``data`` reads: each array's name, dtype
    and shape, then every row (images, ids, labels, attributes, split), block by block,
    so memory stays at one block whatever N is. ``rows`` (ascending row numbers): only
    those, hashed as ``data.subset(rows)`` would be, without that copy."""
    digest = hashlib.sha256()
    for name in ("images", "ids", "labels", "attributes", "split"):
        array = getattr(data, name)
        if array is None:
            digest.update(f"{name}|none|".encode())
            continue
        n = len(array) if rows is None else len(rows)
        digest.update(f"{name}|{array.dtype.str}|{(n, *array.shape[1:])}|".encode())
        per_row = max(1, array.nbytes // max(1, len(array)))
        step = max(1, BLOCK_BYTES // per_row)
        for lo in range(0, n, step):
            block = array[lo : lo + step] if rows is None else array[rows[lo : lo + step]]
            digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class EncodeRecord:
    """What an encode is made from: the attributes a store keeps to say so."""

    data_sha256: str
    weights_sha256: str
    dataset_source: str
    dataset_location: str
    options: dict[str, Any] = field(default_factory=dict)

    def attrs(self) -> dict[str, Any]:
        """The store attributes this record adds (the others are written already)."""
        return {"data_sha256": self.data_sha256, "encode_options": self.options}


@dataclass(frozen=True)
class Freshness:
    """An existing store against an encode about to run: ``up-to-date`` or ``stale``
    (with ``reasons``: what changed)."""

    status: str
    reasons: tuple[str, ...] = ()


def check_existing(output: Path, record: EncodeRecord) -> Freshness:
    """Compare the store at ``output`` (it exists) with ``record``; raises
    OutputExistsError when it is not the same request (see the module's docstring)."""
    attrs = recorded_attrs(output)
    if attrs is None:
        raise OutputExistsError(
            f"'{output}' already exists and is not a complete latent store that records its "
            "data and model; pass --overwrite to replace it or -o to write elsewhere"
        )
    old_options = _json(attrs.get("encode_options"))
    source = (attrs.get("dataset_source"), attrs.get("dataset_location"))
    if source != (record.dataset_source, record.dataset_location):
        raise OutputExistsError(
            f"'{output}' holds latents of other data ({source[0]} at {source[1]}, now "
            f"{record.dataset_source} at {record.dataset_location}); pass --overwrite to "
            "replace it or -o to write elsewhere"
        )
    if old_options != record.options:
        changed = ", ".join(
            f"{key} {old_options.get(key)!r} -> {record.options.get(key)!r}"
            for key in sorted(set(old_options) | set(record.options))
            if old_options.get(key) != record.options.get(key)
        )
        raise OutputExistsError(
            f"'{output}' holds an encode with other options ({changed}); pass --overwrite "
            "to replace it or -o to write elsewhere"
        )
    reasons = []
    if attrs.get("data_sha256") != record.data_sha256:
        reasons.append("the data changed (its content hash differs)")
    if attrs.get("weights_sha256") != record.weights_sha256:
        reasons.append("the model's weights changed")
    return Freshness("stale" if reasons else "up-to-date", tuple(reasons))


def recorded_attrs(path: Path) -> dict[str, Any] | None:
    """The file attributes of the complete store at ``path`` when it records its data's
    content hash (an encode by vaekit 0.6 or later); None for anything else."""
    from vaekit.store import LatentStore

    try:
        with LatentStore.open(path) as store:
            attrs = dict(store.attrs)
    except DataError:
        return None
    return attrs if attrs.get("data_sha256") else None


def _json(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
