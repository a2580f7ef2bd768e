"""Exporting a latent store: AnnData, Parquet and NPZ read back equal to the store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_store import ATTRS, D, fake_rows, write_store
from vaekit import export
from vaekit.errors import DataError, OutputExistsError, UsageError
from vaekit.export import export_latents
from vaekit.store import LatentStore, LatentStoreWriter

N_ROWS = 300


@pytest.fixture
def rows():
    return fake_rows(N_ROWS, seed=3)


@pytest.fixture
def store_path(tmp_path, rows):
    # rows span several export blocks (BLOCK_ROWS is lowered in the streaming tests)
    return write_store(tmp_path / "latents.h5", rows)


def check_provenance(provenance: dict, store_path) -> None:
    with LatentStore.open(store_path) as store:
        assert provenance["source_content_hash"] == store.content_hash()
        assert provenance["source_store"] == str(store_path.resolve())
        assert json.loads(provenance["model_config"]) == store.model_config
        assert provenance["dataset_source"] == "fake"
        assert provenance["vaekit_version"] == store.attrs["vaekit_version"]
    assert provenance["exported_by"].startswith("vaekit ")
    assert "format" not in provenance and "complete" not in provenance


def test_npz_round_trip(tmp_path, store_path, rows, monkeypatch):
    monkeypatch.setattr(export, "BLOCK_ROWS", 128)  # mu/logvar streamed in 3 blocks
    out = export_latents(store_path, tmp_path / "latents.npz")
    with np.load(out) as f:  # allow_pickle is False: every array must load without it
        np.testing.assert_array_equal(f["mu"], rows["mu"])
        np.testing.assert_array_equal(f["logvar"], rows["logvar"])
        np.testing.assert_array_equal(f["labels"], rows["labels"])
        np.testing.assert_array_equal(f["attributes"], rows["attributes"])
        np.testing.assert_array_equal(f["split"], rows["split"])
        np.testing.assert_array_equal(f["ids"], rows["ids"])
        assert f["class_names"].tolist() == ["a", "b", "c"]
        assert f["attribute_names"].tolist() == ATTRS
        assert f["split_names"].tolist() == ["train", "val", "test"]
        assert f["mu"].dtype == np.float32
        check_provenance(json.loads(str(f["provenance"])), store_path)


def test_parquet_round_trip(tmp_path, store_path, rows, monkeypatch):
    pd = pytest.importorskip("pandas", reason="pandas comes with the export extra")
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is the optional export extra")
    monkeypatch.setattr(export, "BLOCK_ROWS", 128)
    out = export_latents(store_path, tmp_path / "latents.parquet")
    assert pq.ParquetFile(out).num_row_groups == 3  # streamed: one row group per block
    df = pd.read_parquet(out)
    assert len(df) == N_ROWS
    mu = df[[f"mu_{j}" for j in range(D)]].to_numpy()
    logvar = df[[f"logvar_{j}" for j in range(D)]].to_numpy()
    np.testing.assert_array_equal(mu, rows["mu"])
    np.testing.assert_array_equal(logvar, rows["logvar"])
    assert mu.dtype == np.float32
    assert df["id"].tolist() == rows["ids"].tolist()
    assert list(df["label"].cat.categories) == ["a", "b", "c"]
    expected = np.array(["a", "b", "c", None], dtype=object)[rows["labels"]]  # -1: missing
    assert df["label"].astype(object).where(df["label"].notna(), None).tolist() == list(expected)
    assert df["split"].astype(str).tolist() == [["train", "val", "test"][s] for s in rows["split"]]
    for a, name in enumerate(ATTRS):
        assert df[name].dtype == bool
        np.testing.assert_array_equal(df[name].to_numpy(), rows["attributes"][:, a])
    metadata = pq.read_schema(out).metadata
    check_provenance(json.loads(metadata[b"vaekit"]), store_path)


def test_anndata_round_trip(tmp_path, store_path, rows):
    anndata = pytest.importorskip("anndata", reason="anndata is the optional export extra")
    out = export_latents(store_path, tmp_path / "latents.h5ad")
    adata = anndata.read_h5ad(out)
    assert adata.n_obs == N_ROWS and adata.n_vars == 0 and adata.X is None
    np.testing.assert_array_equal(adata.obsm["X_vaekit"], rows["mu"])
    np.testing.assert_array_equal(adata.obsm["X_vaekit_logvar"], rows["logvar"])
    assert adata.obs_names.tolist() == rows["ids"].tolist()
    label = adata.obs["label"]
    assert list(label.cat.categories) == ["a", "b", "c"]
    np.testing.assert_array_equal(label.cat.codes.to_numpy(), rows["labels"])  # -1: missing
    np.testing.assert_array_equal(adata.obs["split"].cat.codes.to_numpy(), rows["split"])
    for a, name in enumerate(ATTRS):
        np.testing.assert_array_equal(adata.obs[name].to_numpy(), rows["attributes"][:, a])
    check_provenance(dict(adata.uns["vaekit"]), store_path)


def test_a_store_without_labels_exports_its_latents(tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow is the optional export extra")
    pd = pytest.importorskip("pandas", reason="pandas comes with the export extra")
    path = tmp_path / "plain.h5"
    mu = np.arange(12, dtype=np.float32).reshape(4, 3)
    with LatentStoreWriter(path, 4, 3) as writer:
        writer.append(mu, -mu, ids=np.array(["0", "1", "2", "3"]))
        writer.finish()
    df = pd.read_parquet(export_latents(path, tmp_path / "plain.parquet"))
    assert list(df.columns) == [
        "id",
        *(f"mu_{j}" for j in range(3)),
        "logvar_0",
        "logvar_1",
        "logvar_2",
    ]
    with np.load(export_latents(path, tmp_path / "plain.npz")) as f:
        assert sorted(f.files) == ["ids", "logvar", "mu", "provenance"]
        np.testing.assert_array_equal(f["logvar"], -mu)


def test_an_attribute_named_like_a_column_is_prefixed():
    assert export.attribute_columns(["label", "Smiling", "mu_1", "mu_9"], 3) == [
        "attribute_label",
        "Smiling",
        "attribute_mu_1",
        "mu_9",
    ]


def test_unknown_suffix_names_the_accepted_ones(tmp_path, store_path):
    with pytest.raises(UsageError, match=r"unknown suffix '\.csv'.*\.h5ad, \.parquet, \.npz"):
        export_latents(store_path, tmp_path / "latents.csv")


def test_missing_package_names_the_extra(tmp_path, store_path, monkeypatch):
    real = export.importlib.util.find_spec
    monkeypatch.setattr(
        export.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "anndata" else real(name, *a),
    )
    with pytest.raises(
        UsageError, match=r"needs the anndata package: pip install 'vaekit\[export\]'"
    ):
        export_latents(store_path, tmp_path / "latents.h5ad")
    assert not (tmp_path / "latents.h5ad").exists()


def test_output_rule(tmp_path, store_path):
    out = tmp_path / "latents.npz"
    out.write_text("keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_latents(store_path, out)
    assert out.read_text() == "keep me"
    export_latents(store_path, out, overwrite=True)
    with np.load(out) as f:
        assert f["mu"].shape == (N_ROWS, D)
    link = tmp_path / "link.npz"
    link.symlink_to(out)
    with pytest.raises(DataError, match="symbolic link"):
        export_latents(store_path, link, overwrite=True)


def test_a_bad_store_is_one_line_and_leaves_no_output(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        export_latents(tmp_path / "x.h5", tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == [tmp_path / "x.h5"]


def test_export_and_score_through_the_cli(tmp_path, store_path):
    from typer.testing import CliRunner

    from vaekit.cli import app

    store = store_path
    runner = CliRunner()
    bad = runner.invoke(app, ["export", str(store), "-o", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and ".h5ad, .parquet, .npz" in bad.output
    done = runner.invoke(app, ["export", str(store), "-o", str(tmp_path / "x.npz")])
    assert done.exit_code == 0 and (tmp_path / "x.npz").is_file(), done.output
    scored = runner.invoke(app, ["score", str(store), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["factors"]
