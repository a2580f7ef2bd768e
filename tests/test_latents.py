"""Latents as a data set: per-dimension statistics, LatentDataset (workers, DistributedSampler,
seeded draws), mirrored encodes, up-to-date detection, the docs/latents.md example."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from tests.helpers import train_tiny
from vaekit.data import ImageDataset, fingerprint_arrays, load_dataset
from vaekit.encode import encode_latents
from vaekit.errors import DataError, OutputExistsError
from vaekit.latent_dataset import LatentDataset
from vaekit.latent_stats import LatentStats
from vaekit.store import LatentStore, LatentStoreWriter, join_stores, latent_stats
from vaekit.uptodate import data_sha256

REPO = Path(__file__).resolve().parent.parent
N, D = 600, 3


def fake_rows(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "mu": rng.normal(2.0, 3.0, size=(n, D)).astype(np.float32),
        "logvar": rng.normal(-1.0, 0.5, size=(n, D)).astype(np.float32),
        "labels": rng.integers(-1, 3, size=n),
        "attributes": rng.random((n, 2)) < 0.4,
        "ids": np.array([str(i) for i in range(n)]),
    }


def write_store(path: Path, rows: dict[str, np.ndarray], batch: int = 77) -> Path:
    n = len(rows["mu"])
    writer = LatentStoreWriter(
        path,
        n,
        D,
        class_names=["a", "b", "c"],
        attribute_names=["Smiling", "Eyeglasses"],
        chunk_rows=64,
        attrs={"model_config": {"latent_dim": D}},
    )
    with writer:
        for lo in range(0, n, batch):
            part = {k: v[lo : lo + batch] for k, v in rows.items()}
            writer.append(part.pop("mu"), part.pop("logvar"), **part)
        writer.finish()
    return path


@pytest.fixture
def rows():
    return fake_rows()


@pytest.fixture
def store_path(tmp_path, rows):
    return write_store(tmp_path / "latents.h5", rows)


def as_old_store(path: Path) -> Path:
    """What vaekit before 0.6 wrote: no stats group, no hflip, no content hash."""
    with h5py.File(path, "a") as f:
        del f["stats"]
    return path


# -- per-dimension statistics ----------------------------------------------------------------


def test_stats_merged_from_blocks_equal_numpy_on_all_rows(rows):
    mu, logvar = rows["mu"], rows["logvar"]
    a = LatentStats.of(mu[:100], logvar[:100])
    b = LatentStats.empty(D)
    for lo in range(100, N, 33):
        b.update(mu[lo : lo + 33], logvar[lo : lo + 33])
    merged = a.merge(b)
    assert merged.count == N
    np.testing.assert_allclose(merged.mean, mu.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.std, mu.astype(np.float64).std(0), rtol=1e-10)
    exact = np.sqrt(mu.astype(np.float64).var(0) + np.exp(logvar.astype(np.float64)).mean(0))
    np.testing.assert_allclose(merged.z_std, exact, rtol=1e-10)


def test_z_std_is_the_spread_of_actual_draws(rows):
    mu, logvar = rows["mu"], rows["logvar"]
    rng = np.random.default_rng(1)
    draws = mu + np.exp(0.5 * logvar) * rng.standard_normal((400, N, D))
    stats = LatentStats.of(mu, logvar)
    np.testing.assert_allclose(draws.reshape(-1, D).std(0), stats.z_std, rtol=0.01)
    assert (stats.z_std > stats.std).all()


def test_writer_and_join_store_the_same_stats(tmp_path, rows, store_path):
    first = write_store(tmp_path / "p0.h5", {k: v[:250] for k, v in rows.items()})
    second = write_store(tmp_path / "p1.h5", {k: v[250:] for k, v in rows.items()})
    joined = join_stores([first, second], tmp_path / "joined.h5")
    with LatentStore.open(store_path) as one, LatentStore.open(joined) as j:
        expected = LatentStats.of(rows["mu"], rows["logvar"])
        for store in (one, j):
            got = store.stats()
            assert got.count == N
            np.testing.assert_allclose(got.mean, expected.mean, rtol=1e-10)
            np.testing.assert_allclose(got.std, expected.std, rtol=1e-10)
            np.testing.assert_allclose(got.z_std, expected.z_std, rtol=1e-10)
        with h5py.File(store_path) as f:  # plain h5py reads them too
            np.testing.assert_allclose(f["stats/z_std"][()], expected.z_std, rtol=1e-10)
            np.testing.assert_array_equal(f["stats/z_mean"][()], f["stats/mean"][()])


def test_old_store_reads_without_stats_or_hflip(store_path, rows):
    as_old_store(store_path)
    with LatentStore.open(store_path) as store:
        assert store.stats() is None and not store.has_hflip
        assert store.hflip().shape == (N,) and not store.hflip().any()
        assert not store.hflip([3, 1]).any() and len(store.hflip(slice(5, 9))) == 4
        computed = latent_stats(store)
        np.testing.assert_allclose(computed.std, rows["mu"].astype(np.float64).std(0), rtol=1e-9)
        assert store.describe()["hflip_rows"] == 0
    data = LatentDataset(store_path, standardize=True)
    z = torch.stack([data[i]["z"] for i in range(N)])
    np.testing.assert_allclose(z.mean(0).numpy(), 0, atol=1e-5)


def test_damaged_stats_are_one_line(store_path):
    with h5py.File(store_path, "a") as f:
        f["stats"].attrs["count"] = 7
    with pytest.raises(DataError, match="'stats' counts 7 rows, the store has 600"):
        LatentStore.open(store_path)


def test_inspect_shows_the_stats(store_path):
    from rich.console import Console

    from vaekit.summary import summarise

    console = Console(width=120, record=True)
    for renderable in summarise(store_path):
        console.print(renderable)
    text = console.export_text()
    assert "latent statistics over 600 rows" in text and "std of z" in text
    assert f"{LatentStats.of(fake_rows()['mu'], fake_rows()['logvar']).z_std[0]:.4g}" in text


# -- LatentDataset -----------------------------------------------------------------------------


def test_items_are_the_posterior_means_with_labels(store_path, rows):
    data = LatentDataset(store_path)
    assert len(data) == N and data.class_names == ["a", "b", "c"]
    item = data[17]
    np.testing.assert_array_equal(item["z"].numpy(), rows["mu"][17])
    assert item["label"].item() == rows["labels"][17] and item["index"].item() == 17
    np.testing.assert_array_equal(item["attributes"].numpy(), rows["attributes"][17])
    assert item["hflip"].item() is False
    batch = data.__getitems__([5, 3, 5, -1])
    np.testing.assert_array_equal(
        torch.stack([b["z"] for b in batch]).numpy(), rows["mu"][[5, 3, 5, N - 1]]
    )
    with pytest.raises(IndexError):
        data[N]
    subset = LatentDataset(store_path, rows=[9, 2])
    assert len(subset) == 2 and subset[0]["index"].item() == 9


def test_standardised_latents_use_the_stored_stats(store_path, rows):
    means = torch.stack([LatentDataset(store_path, standardize=True)[i]["z"] for i in range(N)])
    np.testing.assert_allclose(means.mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(means.numpy().std(0), 1, atol=1e-5)
    draws = LatentDataset(store_path, draw=True, standardize=True)
    z = torch.stack([draws[i]["z"] for i in range(N)]).numpy()
    stats = LatentStats.of(rows["mu"], rows["logvar"])
    raw = z * stats.z_std + stats.mean
    np.testing.assert_allclose(raw.std(0), stats.z_std, rtol=0.1)


def draws_of(data: LatentDataset, epoch: int, **loader: object) -> np.ndarray:
    """Every row's z in ``epoch``, by row, through a shuffling DataLoader."""
    data.set_epoch(epoch)
    out = np.full((len(data), D), np.nan, dtype=np.float32)
    for batch in DataLoader(data, shuffle=True, **loader):
        out[batch["index"].numpy()] = batch["z"].numpy()
    return out


def test_draws_are_seeded_per_row_and_epoch(store_path, rows):
    data = LatentDataset(store_path, draw=True, seed=3)
    first = draws_of(data, 0, batch_size=64)
    again = draws_of(LatentDataset(store_path, draw=True, seed=3), 0, batch_size=50)
    np.testing.assert_array_equal(first, again)  # same seed: same z, whatever the batches
    later = draws_of(data, 1, batch_size=64)
    other_seed = draws_of(LatentDataset(store_path, draw=True, seed=4), 0, batch_size=64)
    assert not np.isclose(first, later).any() and not np.isclose(first, other_seed).any()
    eps = (np.concatenate([first, later]) - np.tile(rows["mu"], (2, 1))) / np.exp(
        0.5 * np.tile(rows["logvar"], (2, 1))
    )
    assert abs(eps.mean()) < 0.05 and abs(eps.std() - 1) < 0.05
    # the same epoch again gives the same z: an epoch is a function of the seed
    np.testing.assert_array_equal(draws_of(data, 0, batch_size=64), first)


def test_two_workers_yield_every_row_once_and_the_same_draws(store_path, rows):
    data = LatentDataset(store_path, draw=True, seed=3)
    data[0]  # opened in the parent first: the workers must open their own handle
    pickle.dumps(data)  # an open HDF5 handle is never pickled
    data.set_epoch(2)
    seen = np.zeros(N, int)
    z = np.zeros((N, D), np.float32)
    for batch in DataLoader(data, batch_size=32, shuffle=True, num_workers=2):
        idx = batch["index"].numpy()
        seen[idx] += 1
        z[idx] = batch["z"].numpy()
        np.testing.assert_array_equal(batch["label"].numpy(), rows["labels"][idx])
    assert (seen == 1).all()
    np.testing.assert_array_equal(z, draws_of(data, 2, batch_size=600))


def test_distributed_sampler_two_replicas_cover_every_row_once(store_path, rows):
    data = LatentDataset(store_path)
    seen = np.zeros(N, int)
    for rank in range(2):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=5)
        sampler.set_epoch(1)
        for batch in DataLoader(data, batch_size=40, sampler=sampler):
            idx = batch["index"].numpy()
            seen[idx] += 1
            np.testing.assert_array_equal(batch["z"].numpy(), rows["mu"][idx])
    assert (seen == 1).all()


def test_the_docs_example_runs(tmp_path, rows, monkeypatch):
    text = (REPO / "docs" / "latents.md").read_text()
    block = re.search(r"<!-- example -->\n```python\n(.*?)```", text, re.S).group(1)
    lines = [line for line in block.splitlines() if line and "import" not in line]
    assert len(lines) <= 10, "the example is meant to stay ten lines"
    write_store(tmp_path / "latents.h5", rows)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block, "docs/latents.md", "exec"), namespace)
    assert isinstance(namespace["model"], torch.nn.Module)


# -- encode: stats, mirrored images, up to date -------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("latents"), epochs=1).run.path


def digits_data(images: np.ndarray | None = None) -> ImageDataset:
    d = load_dataset()
    return ImageDataset(
        images=d.images if images is None else images,
        ids=d.ids,
        source="digits",
        location="embedded",
        labels=d.labels,
        class_names=d.class_names,
    )


def test_encode_stores_stats_and_mirrored_rows(tmp_path, run_dir):
    from vaekit.runs import load_model

    plain = encode_latents(digits_data(), tmp_path / "plain.h5", model_dir=run_dir).path
    flipped = encode_latents(digits_data(), tmp_path / "hflip.h5", model_dir=run_dir, hflip=True)
    assert flipped.status == "written" and flipped.rows == 2 * 1797
    with LatentStore.open(plain) as p, LatentStore.open(flipped.path) as h:
        assert h.n == 2 * p.n and h.has_hflip and not p.has_hflip
        np.testing.assert_array_equal(h.hflip(), np.tile([False, True], p.n))
        mu_p, _ = p.read(slice(None))
        mu_h, logvar_h = h.read(slice(None))
        np.testing.assert_allclose(mu_h[::2], mu_p, atol=1e-5)  # row 2i: image i
        np.testing.assert_array_equal(h.labels()[1::2], p.labels())
        np.testing.assert_array_equal(h.ids()[1::2], p.ids())
        images = torch.from_numpy(load_dataset().images[:5]).float() / 255
        with torch.no_grad():
            mirrored = load_model(run_dir).posterior(images.flip(-1)).mean.numpy()
        np.testing.assert_allclose(mu_h[1:10:2], mirrored, atol=1e-5)  # row 2i+1: mirrored
        assert not np.allclose(mu_h[1::2], mu_h[::2], atol=1e-3)
        stats = h.stats()
        expected = LatentStats.of(mu_h, logvar_h)
        np.testing.assert_allclose(stats.std, expected.std, rtol=1e-6)
        np.testing.assert_allclose(stats.z_std, expected.z_std, rtol=1e-6)
        assert h.describe()["hflip_rows"] == 1797


def test_data_hash_sees_one_changed_pixel_that_the_fingerprint_misses():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20_000, 1, 4, 4), dtype=np.uint8)
    ids = np.arange(20_000).astype(str)
    changed = images.copy()
    changed[1, 0, 2, 2] ^= 1  # row 1: between the fingerprint's strided rows 0 and 4
    a = ImageDataset(images=images, ids=ids, source="x", location="m")
    b = ImageDataset(images=changed, ids=ids, source="x", location="m")
    assert fingerprint_arrays(images, ids) == fingerprint_arrays(changed, ids)
    assert data_sha256(a) != data_sha256(b)
    relabelled = ImageDataset(
        images=images, ids=ids, source="x", location="m", labels=ids.astype(int)
    )
    assert data_sha256(relabelled) != data_sha256(a)


def test_same_encode_again_is_up_to_date_and_writes_nothing(tmp_path, run_dir):
    out = tmp_path / "latents.h5"
    first = encode_latents(digits_data(), out, model_dir=run_dir, samples=2, seed=1)
    assert first.status == "written"
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    again = encode_latents(digits_data(), out, model_dir=run_dir, samples=2, seed=1, batch_size=64)
    assert again.status == "up-to-date" and "up to date" in again.message
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents.h5"]
    forced = encode_latents(
        digits_data(), out, model_dir=run_dir, samples=2, seed=1, overwrite=True
    )
    assert forced.status == "written" and out.stat().st_mtime_ns != before[1]


def test_a_changed_image_triggers_a_new_encode(tmp_path, run_dir):
    out = tmp_path / "latents.h5"
    before = encode_latents(digits_data(), out, model_dir=run_dir)
    with LatentStore.open(before.path) as store:
        old_hash = store.attrs["data_sha256"]
    images = load_dataset().images.copy()
    images[1000, 0, 3, 3] ^= 16  # one pixel of one image
    result = encode_latents(digits_data(images), out, model_dir=run_dir)
    assert result.status == "updated" and result.reasons == (
        "the data changed (its content hash differs)",
    )
    assert "updated" in result.message and "data changed" in result.message
    with LatentStore.open(out) as store:
        assert len(store.attrs["data_sha256"]) == 64 and store.attrs["data_sha256"] != old_hash
    assert encode_latents(digits_data(images), out, model_dir=run_dir).status == "up-to-date"


def test_changed_weights_trigger_a_new_encode(tmp_path, run_dir):
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns(".lock"))
    out = tmp_path / "latents.h5"
    encode_latents(digits_data(), out, model_dir=run)
    weights = load_file(run / "model.safetensors")
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = weights[name] + 0.01
    save_file(weights, run / "model.safetensors")
    result = encode_latents(digits_data(), out, model_dir=run)
    assert result.status == "updated" and result.reasons == ("the model's weights changed",)
    assert encode_latents(digits_data(), out, model_dir=run).status == "up-to-date"


def test_other_requests_are_not_replaced_without_overwrite(tmp_path, run_dir):
    out = tmp_path / "latents.h5"
    encode_latents(digits_data(), out, model_dir=run_dir)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match=r"other options \(hflip False -> True\)"):
        encode_latents(digits_data(), out, model_dir=run_dir, hflip=True)
    other = ImageDataset(images=load_dataset().images, ids=load_dataset().ids, source="folder",
                         location="data/")  # fmt: skip
    with pytest.raises(OutputExistsError, match="latents of other data"):
        encode_latents(other, out, model_dir=run_dir)
    as_old_store(out)
    with h5py.File(out, "a") as f:
        del f.attrs["data_sha256"]  # a store from before vaekit 0.6
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        encode_latents(digits_data(), out, model_dir=run_dir)
    assert out.read_bytes() == before


def test_counter_normal_draws_are_standard_normal_and_a_function_of_their_counter():
    from scipy import stats

    from vaekit.latent_dataset import counter_normal

    x = counter_normal(3, 2, np.arange(20_000), 16)
    assert x.dtype == np.float32 and x.shape == (20_000, 16)
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    assert stats.kstest(x.ravel(), "norm").pvalue > 0.001
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.02  # dimensions independent
    # the same (seed, epoch, row) gives the same ε whatever else is in the batch
    np.testing.assert_array_equal(counter_normal(3, 2, np.array([7, 2]), 16), x[[7, 2]])
    assert not np.array_equal(counter_normal(3, 3, np.arange(4), 16), x[:4])  # other epoch
    assert not np.array_equal(counter_normal(4, 2, np.arange(4), 16), x[:4])  # other seed
