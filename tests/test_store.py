"""The latent store: streaming writer, reader, row reads, queries, hashes, bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from vaekit.errors import DataError, UsageError
from vaekit.store import LatentStore, LatentStoreWriter, join_stores

N, D, K = 1000, 5, 3
ATTRS = ["Smiling", "Eyeglasses"]


def fake_rows(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "mu": rng.normal(size=(n, D)).astype(np.float32),
        "logvar": rng.normal(size=(n, D)).astype(np.float32),
        "samples": rng.normal(size=(n, K, D)).astype(np.float32),
        "labels": rng.integers(-1, 3, size=n),
        "attributes": rng.random((n, len(ATTRS))) < 0.4,
        "ids": np.array([f"img/{i:05d}.png" for i in range(n)]),
        "split": rng.integers(0, 3, size=n).astype(np.uint8),
    }


def write_store(path, rows, batch: int = 97, chunk_rows: int | None = 128, **kwargs):
    """Write ``rows`` in odd-sized batches (so batches straddle chunks)."""
    n = len(rows["mu"])
    writer = LatentStoreWriter(
        path,
        n,
        D,
        class_names=["a", "b", "c"],
        attribute_names=ATTRS,
        samples=K,
        split_names=["train", "val", "test"],
        chunk_rows=chunk_rows,
        attrs={"model_config": {"latent_dim": D}, "dataset_source": "fake"},
        **kwargs,
    )
    with writer:
        for start in range(0, n, batch):
            part = {k: v[start : start + batch] for k, v in rows.items()}
            writer.append(part.pop("mu"), part.pop("logvar"), **part)
        writer.finish()
    return path


@pytest.fixture
def rows():
    return fake_rows()


@pytest.fixture
def store_path(tmp_path, rows):
    return write_store(tmp_path / "latents.h5", rows)


def test_round_trip(store_path, rows):
    with LatentStore.open(store_path) as store:
        assert (store.n, store.latent_dim, store.num_samples) == (N, D, K)
        assert store.path == store_path and store.complete
        assert store.class_names == ["a", "b", "c"]
        assert store.attribute_names == ATTRS
        assert store.split_names == ["train", "val", "test"]
        mu, logvar = store.read(slice(None))
        np.testing.assert_array_equal(mu, rows["mu"])
        np.testing.assert_array_equal(logvar, rows["logvar"])
        np.testing.assert_array_equal(store.read_samples(slice(None)), rows["samples"])
        np.testing.assert_array_equal(store.labels(), rows["labels"])
        assert store.labels().dtype == np.int64
        np.testing.assert_array_equal(store.attributes(), rows["attributes"])
        assert store.attributes().dtype == bool
        np.testing.assert_array_equal(store.ids(), rows["ids"])
        np.testing.assert_array_equal(store.split(), rows["split"])
        assert store.attrs["dataset_source"] == "fake"
        assert store.model_config == {"latent_dim": D}
        assert store.file["mu"].chunks == (128, D)
        assert store.file["mu"].compression == "gzip"


def test_read_rows_in_any_order(store_path, rows):
    rng = np.random.default_rng(1)
    index = rng.integers(0, N, size=300)  # unsorted, with repeats
    with LatentStore.open(store_path) as store:
        mu, logvar = store.read(index)
        np.testing.assert_array_equal(mu, rows["mu"][index])
        np.testing.assert_array_equal(logvar, rows["logvar"][index])
        mask = rows["labels"] == 1
        np.testing.assert_array_equal(store.read(mask)[0], rows["mu"][mask])
        np.testing.assert_array_equal(store.read([-1])[0], rows["mu"][[-1]])
        assert store.read(np.array([], dtype=int))[0].shape == (0, D)
        with pytest.raises(UsageError, match="out of range"):
            store.read([N])


def test_iter_chunks_streams_every_row_in_order(store_path, rows):
    with LatentStore.open(store_path) as store:
        chunks = list(store.iter_chunks(chunk_size=300))
        assert [len(m) for m, _ in chunks] == [300, 300, 300, 100]
        assert all(m.dtype == np.float32 and lv.dtype == np.float32 for m, lv in chunks)
        np.testing.assert_array_equal(np.concatenate([m for m, _ in chunks]), rows["mu"])
        picked = np.array([5, 900, 3, 3])
        got = np.concatenate([m for m, _ in store.iter_chunks(picked, chunk_size=3)])
        np.testing.assert_array_equal(got, rows["mu"][picked])


def test_select_by_query_and_split(store_path, rows):
    with LatentStore.open(store_path) as store:
        a = rows["attributes"]
        expected = np.flatnonzero(a[:, 0] & ~a[:, 1])
        np.testing.assert_array_equal(store.select(["smiling and not eyeglasses"]), expected)
        np.testing.assert_array_equal(store.select(["Smiling", "~Eyeglasses"]), expected)
        in_val = np.flatnonzero((rows["labels"] == 2) & (rows["split"] == 1))
        np.testing.assert_array_equal(store.select(["c"], split="val"), in_val)
        assert len(store.select([], split="all")) == N
        with pytest.raises(UsageError, match="unknown split"):
            store.select(["a"], split="holdout")
        with pytest.raises(DataError, match=r"unknown label 'frowning'.*Smiling \("):
            store.select(["frowning"])


def test_content_hash_depends_on_arrays_not_layout(tmp_path, rows, store_path):
    other = write_store(tmp_path / "lzf.h5", rows, batch=1000, chunk_rows=333, compression="lzf")
    changed_rows = dict(rows, mu=rows["mu"] + 1)
    changed = write_store(tmp_path / "changed.h5", changed_rows)
    with LatentStore.open(store_path) as a, LatentStore.open(other) as b:
        with LatentStore.open(changed) as c:
            assert a.content_hash() == b.content_hash() != c.content_hash()
            assert len(a.content_hash()) == 64


def test_join_stores_equals_one_store(tmp_path, rows, store_path):
    first = write_store(tmp_path / "p0.h5", {k: v[:400] for k, v in rows.items()})
    second = write_store(tmp_path / "p1.h5", {k: v[400:] for k, v in rows.items()})
    joined = join_stores([first, second], tmp_path / "joined.h5", attrs={"processes": 2})
    with LatentStore.open(joined) as j, LatentStore.open(store_path) as one:
        assert j.n == N and j.attrs["processes"] == 2
        assert j.content_hash() == one.content_hash()


def test_writer_without_finish_leaves_an_incomplete_store(tmp_path, rows):
    path = tmp_path / "half.h5"
    with pytest.raises(RuntimeError):
        with LatentStoreWriter(path, N, D, compression="none") as writer:
            writer.append(rows["mu"][:10], rows["logvar"][:10], ids=rows["ids"][:10])
            raise RuntimeError("killed")
    with pytest.raises(DataError, match="incomplete latent store"):
        LatentStore.open(path)
    with LatentStore.open(path, allow_incomplete=True) as store:
        assert not store.complete
    with h5py.File(path) as f:
        assert not f.attrs["complete"]


def test_writer_checks_row_counts(tmp_path, rows):
    writer = LatentStoreWriter(tmp_path / "x.h5", 5, D)
    with writer:
        with pytest.raises(DataError, match="declared with 5 rows"):
            writer.append(rows["mu"][:6], rows["logvar"][:6], ids=rows["ids"][:6])
        with pytest.raises(DataError, match="missing 'ids'"):
            writer.append(rows["mu"][:2], rows["logvar"][:2])
        writer.append(rows["mu"][:2], rows["logvar"][:2], ids=rows["ids"][:2])
        with pytest.raises(DataError, match="2 of 5 rows"):
            writer.finish()


def test_not_a_store_fails_clearly_in_every_reader(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        LatentStore.open(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["mu"] = np.zeros((3, 2), np.float32)
    with pytest.raises(DataError, match="not a vaekit latent store"):
        LatentStore.open(other)
    with pytest.raises(DataError, match="no latent store at"):
        LatentStore.open(tmp_path / "missing.h5")


def test_unknown_compression(tmp_path):
    with pytest.raises(UsageError, match="gzip, lzf, none"):
        LatentStoreWriter(tmp_path / "x.h5", 1, D, compression="zstd")
