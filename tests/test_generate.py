"""sample, interpolate, reconstruct, attribute vectors: latents to images, seeded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import train_tiny
from vaekit import hookimpl
from vaekit.cli import app
from vaekit.cluster import Cluster, fit_cluster
from vaekit.data import load_dataset
from vaekit.encode import encode_dataset
from vaekit.errors import DataError, UsageError
from vaekit.generate import (
    attribute_edit,
    decode,
    encode_images,
    interpolate,
    interpolate_latents,
    interpolate_pairs,
    reconstruct,
    sample,
    slerp,
)
from vaekit.images import TITLE_BAND, make_grid
from vaekit.plugins import get_plugin_host
from vaekit.runs import open_run
from vaekit.store import LatentStore

runner = CliRunner()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict:
    """A tiny MLP VAE on the digits, its latent store and a cluster of the 3s."""
    root = tmp_path_factory.mktemp("generate")
    run = train_tiny(root, epochs=1).run.path
    store = encode_dataset(None, root / "latents.h5", model_dir=run)
    cluster = root / "three.json"
    fit_cluster(store, "3", output=cluster, components=1, gate=0)
    return {"root": root, "run": run, "store": store, "cluster": cluster}


@pytest.fixture
def model(pipeline):
    return open_run(pipeline["run"])


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def digit_png(path: Path, index: int) -> Path:
    Image.fromarray(load_dataset().images[index, 0]).save(path)
    return path


# -- interpolation -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolation_ends_are_the_reconstructions(pipeline, model, tmp_path, method):
    a, b = digit_png(tmp_path / "a.png", 3), digit_png(tmp_path / "b.png", 10)
    walk = interpolate(model, a, b, steps=4, method=method)
    assert walk.images.shape == (6, 1, 8, 8) and walk.images.dtype == np.uint8
    mu, _ = encode_images(model, load_dataset().images[[3, 10]])
    np.testing.assert_array_equal(walk.images[0], decode(model, mu[:1])[0])
    np.testing.assert_array_equal(walk.images[-1], decode(model, mu[1:])[0])
    # store rows give the same ends (the store holds the same posterior means)
    rows = interpolate(model, f"{pipeline['store']}:3", f"{pipeline['store']}:10", 4, method)
    np.testing.assert_array_equal(rows.images[[0, -1]], walk.images[[0, -1]])


def test_lerp_and_slerp_formulas():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    walk = interpolate_latents(a, b, steps=3, method="lerp")
    t = np.array([1.0, 0.75, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(walk, t[:, None] * a + (1 - t[:, None]) * b, atol=1e-7)
    arc = slerp(a, b, t)
    np.testing.assert_allclose(arc[[0, -1]], [a, b], atol=1e-12)
    angles = np.arctan2(arc[:, 1], arc[:, 0])
    np.testing.assert_allclose(np.diff(angles), np.pi / 8, atol=1e-12)  # constant angular speed
    np.testing.assert_allclose(slerp(a, 3 * a, t), t[:, None] * a + (1 - t[:, None]) * 3 * a)
    with pytest.raises(UsageError, match="lerp, slerp"):
        interpolate_latents(a, b, method="cubic")


def test_interpolate_cli_grid_has_steps_plus_two_columns(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store, run = str(pipeline["store"]), str(pipeline["run"])
    result = runner.invoke(
        app,
        ["interpolate", f"{store}:0", f"{store}:7", "--steps", "5", "-m", run, "-o", "w.png"],
    )
    assert result.exit_code == 0, result.output
    expected = make_grid(np.zeros((7, 1, 8, 8), np.uint8), ncol=7, scale=8)
    titled = expected.shape[0] + TITLE_BAND  # A and B above the end columns
    assert Image.open("w.png").size == (expected.shape[1], titled)
    result = runner.invoke(
        app,
        ["interpolate", "--pairs", "3", "--latents", store, "--steps", "2", "-m", run,
         "--method", "slerp", "-o", "pairs.png"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = make_grid(np.zeros((12, 1, 8, 8), np.uint8), ncol=4, scale=8)
    assert Image.open("pairs.png").size == (expected.shape[1], expected.shape[0] + TITLE_BAND)


def test_interpolate_between_clusters_walks_between_their_means(pipeline, model):
    other = fit_cluster(pipeline["store"], "7")
    walk = interpolate(model, str(pipeline["cluster"]), other.mean.astype(np.float32), steps=2)
    np.testing.assert_allclose(walk.z[0], Cluster.load(pipeline["cluster"]).mean, rtol=1e-6)
    np.testing.assert_allclose(walk.z[-1], other.mean, rtol=1e-6)


def test_interpolate_pairs_is_seeded(pipeline, model):
    a = interpolate_pairs(model, pipeline["store"], pairs=2, steps=1, seed=5)
    b = interpolate_pairs(model, pipeline["store"], pairs=2, steps=1, seed=5)
    assert a.images.shape == (6, 1, 8, 8)
    np.testing.assert_array_equal(a.images, b.images)


def test_interpolate_bad_ends(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = str(pipeline["run"])
    result = runner.invoke(app, ["interpolate", "nothing", "x.png", "-m", run])
    assert result.exit_code == 1 and "neither an image file" in result.output
    result = runner.invoke(app, ["interpolate", f"{pipeline['store']}:99999", "x", "-m", run])
    assert result.exit_code == 1 and "row 99999 does not exist" in result.output
    result = runner.invoke(app, ["interpolate", "-m", run])
    assert result.exit_code == 2 and "--pairs" in result.output


# -- sampling ----------------------------------------------------------------------------------


def test_same_seed_same_png_bytes(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["sample", "-m", str(pipeline["run"]), "-n", "16"]
    for name, extra in (("a", []), ("b", []), ("c", ["--seed", "1"])):
        result = runner.invoke(app, [*base, "--cluster", str(pipeline["cluster"]), *extra,
                                     "-o", f"{name}.png"])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert sha(tmp_path / "a.png") == sha(tmp_path / "b.png") != sha(tmp_path / "c.png")
    for name in ("p1", "p2"):
        result = runner.invoke(app, [*base, "--prior", "--temperature", "0.7", "-o", f"{name}.png"])
        assert result.exit_code == 0, result.output
    assert sha(tmp_path / "p1.png") == sha(tmp_path / "p2.png")


def test_sample_draws_from_the_cluster(pipeline, model):
    out = sample(model, 8, cluster=pipeline["cluster"], seed=2, temperature=0.5)
    want = Cluster.load(pipeline["cluster"]).sample(8, seed=2, temperature=0.5)
    np.testing.assert_array_equal(out.z, want)
    np.testing.assert_array_equal(out.images, decode(model, want))
    zero = sample(model, 2, cluster=pipeline["cluster"], temperature=0.0)
    np.testing.assert_allclose(zero.z, [Cluster.load(pipeline["cluster"]).mean] * 2, rtol=1e-6)


def test_sample_cluster_from_a_digits_pipeline_end_to_end(tmp_path, monkeypatch):
    """train -> encode -> fit-cluster --label 3 -> sample --cluster 3, all via the CLI."""
    monkeypatch.chdir(tmp_path)
    steps = [
        ["train", "--encoder", "mlp", "--encoder-opt", "hidden=32", "--decoder-opt", "hidden=32",
         "-z", "4", "--epochs", "1", "--accelerator", "cpu", "--name", "digits"],
        ["encode"],
        ["fit-cluster", "--label", "3"],
        ["sample", "--cluster", "3", "-n", "9", "--save", "threes"],
    ]  # fmt: skip
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    assert Path("latents.h5").is_file() and Path("clusters/3.json").is_file()
    grid = Image.open("grid.png")
    expected = make_grid(np.zeros((9, 1, 8, 8), np.uint8), scale=8)
    assert grid.size == (expected.shape[1], expected.shape[0])
    assert sorted(p.name for p in Path("threes").iterdir())[:2] == ["0000.png", "0001.png"]
    assert len(list(Path("threes").iterdir())) == 9


def test_sample_saves_latents(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["sample", "-m", str(pipeline["run"]), "--prior", "-n", "5", "--seed", "3"]
    assert runner.invoke(app, [*base, "--save", "z.npy"]).exit_code == 0
    assert runner.invoke(app, [*base, "--save", "out/z.h5", "-o", "out/g.png"]).exit_code == 0
    z = np.load("z.npy")
    with h5py.File("out/z.h5") as f:
        np.testing.assert_array_equal(f["z"][()], z)
    np.testing.assert_array_equal(z, sample(open_run(pipeline["run"]), 5, seed=3).z)
    result = runner.invoke(app, [*base, "--save", "z.npy"])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert runner.invoke(app, [*base, "--save", "z.npy", "--overwrite"]).exit_code == 0


def test_outputs_that_are_not_pngs_are_never_overwritten(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("keep me")
    result = runner.invoke(app, ["sample", "-m", str(pipeline["run"]), "-o", "notes.txt"])
    assert result.exit_code == 1 and Path("notes.txt").read_text() == "keep me"
    assert "--overwrite" in result.output
    # a PNG is a picture: redrawn in place; a file named .png that is no PNG needs --overwrite
    runner.invoke(app, ["sample", "-m", str(pipeline["run"]), "-o", "old.png"])
    first = Path("old.png").read_bytes()
    result = runner.invoke(app, ["sample", "-m", str(pipeline["run"]), "-o", "old.png", "-n", "4"])
    assert result.exit_code == 0 and Path("old.png").read_bytes() != first
    Path("fake.png").write_bytes(b"not a picture")
    result = runner.invoke(app, ["sample", "-m", str(pipeline["run"]), "-o", "fake.png"])
    assert result.exit_code == 1 and Path("fake.png").read_bytes() == b"not a picture"
    result = runner.invoke(
        app, ["sample", "-m", str(pipeline["run"]), "-o", "fake.png", "--overwrite"]
    )
    assert result.exit_code == 0 and Path("fake.png").read_bytes().startswith(b"\x89PNG")


def test_label_needs_a_conditional_model_or_a_cluster(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["sample", "-m", str(pipeline["run"]), "--label", "3"])
    assert result.exit_code == 1
    assert "class-conditional" in result.output and "vaekit fit-cluster --label 3" in result.output


class ConditionalKind:
    """A throwaway plugin: a model kind other than ``vae`` trains class-conditionally."""

    @hookimpl
    def register_models(self, register):
        from vaekit.model import VAE

        class Conditional(VAE):
            needs_labels = True  # declared, not inferred from the name

        register("cvae-test", Conditional)


def test_label_with_a_class_conditional_model(tmp_path):
    host = get_plugin_host()
    host.add_plugin(ConditionalKind(), "cvae-test")
    try:
        run = train_tiny(tmp_path, epochs=1, kind="cvae-test").run.path
        net = open_run(run)
        assert net.num_classes == 10
        out = sample(net, 4, label="3", seed=0, model_prior=True)
        np.testing.assert_array_equal(out.labels, [3, 3, 3, 3])
        other = sample(net, 4, label="4", seed=0, model_prior=True)
        np.testing.assert_array_equal(out.z, other.z)
        assert not np.array_equal(out.images, other.images)  # same z, another class
        with pytest.raises(DataError, match="model's classes are: 0, 1"):
            sample(net, 1, label="eleven")
    finally:
        host.remove_plugin("cvae-test")


def test_cluster_of_another_latent_size_is_refused(pipeline, model, tmp_path):
    cluster = Cluster.load(pipeline["cluster"])
    cluster.means = np.zeros((1, 3))
    cluster.covariances = np.eye(3)[None]
    with pytest.raises(DataError, match="3 latent dimensions but the model has 4"):
        sample(model, 2, cluster=cluster)


# -- attribute vectors and reconstructions ---------------------------------------------------


def test_attribute_vector_moves_along_the_mean_difference(pipeline, model, tmp_path):
    png = digit_png(tmp_path / "x.png", 0)
    edit = attribute_edit(model, png, pipeline["store"], "3", strengths=(0.0, 1.0, 2.0))
    with LatentStore.open(pipeline["store"]) as store:
        mu, _ = store.read(slice(None))
        labels = store.labels()
    direction = mu[labels == 3].mean(0) - mu[labels != 3].mean(0)
    np.testing.assert_allclose(edit.z[1] - edit.z[0], direction, atol=1e-5)
    np.testing.assert_allclose(edit.z[2] - edit.z[0], 2 * direction, atol=1e-5)
    x_mu, _ = encode_images(model, load_dataset().images[:1])
    np.testing.assert_array_equal(edit.images[0], decode(model, x_mu)[0])  # strength 0
    with pytest.raises(DataError) as info:  # a label the store lacks: which store is said
        attribute_edit(model, png, pipeline["store"], "smiling")
    message = str(info.value)
    assert "unknown label 'smiling'; available classes: 0 (" in message
    assert f"in the store '{pipeline['store']}'" in message


def test_sample_from_add_cli(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png = digit_png(tmp_path / "x.png", 0)
    args = ["sample", "-m", str(pipeline["run"]), "--from", str(png), "--add", "3",
            "--strength", "1.5", "--latents", str(pipeline["store"]), "-o", "edit.png"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = make_grid(np.zeros((3, 1, 8, 8), np.uint8), ncol=3, scale=8)
    assert Image.open("edit.png").size == (expected.shape[1], expected.shape[0] + TITLE_BAND)
    result = runner.invoke(app, ["sample", "-m", str(pipeline["run"]), "--from", str(png)])
    assert result.exit_code == 2 and "--add" in result.output


def test_reconstruct_uses_the_runs_preprocessing(pipeline, model, tmp_path, monkeypatch):
    originals, recon = reconstruct(model, None, n=6, seed=1)
    images = load_dataset().images
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(originals, images[np.sort(rng.choice(len(images), 6, False))])
    mu, _ = encode_images(model, originals)
    np.testing.assert_array_equal(recon, decode(model, mu))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["reconstruct", "-m", str(pipeline["run"]), "-n", "4"])
    assert result.exit_code == 0, result.output
    expected = make_grid(np.zeros((8, 1, 8, 8), np.uint8), ncol=8, scale=8, group=2)
    assert Image.open("recon.png").size == (expected.shape[1], expected.shape[0] + TITLE_BAND)


def test_store_rows_of_another_model_are_refused(pipeline, tmp_path):
    other = open_run(train_tiny(tmp_path, epochs=1, seed=1).run.path)
    with pytest.raises(DataError, match="encoded by another model"):
        interpolate(other, f"{pipeline['store']}:0", f"{pipeline['store']}:1")
    with pytest.raises(DataError, match="encoded by another model"):
        interpolate_pairs(other, pipeline["store"], pairs=1)


def test_the_model_defaults_to_the_run_that_encoded_the_latents(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/latest here
    store = str(pipeline["store"])
    result = runner.invoke(app, ["interpolate", f"{store}:0", str(pipeline["cluster"])])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["interpolate", "--pairs", "1", "--latents", store])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sample", "--cluster", str(pipeline["cluster"]), "-n", "2"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sample", "--prior", "-n", "2"])
    assert result.exit_code == 1 and "vaekit train" in result.output


def test_outputs_get_ordinary_file_modes(pipeline, tmp_path, monkeypatch):
    import os
    import stat

    monkeypatch.chdir(tmp_path)
    mask = os.umask(0o022)
    try:
        args = ["sample", "--cluster", str(pipeline["cluster"]), "-n", "2", "--save", "s"]
        assert runner.invoke(app, args).exit_code == 0
        fit_cluster(pipeline["store"], "5", output="five.json")
        for path in ("grid.png", "s/0000.png", "five.json"):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
    finally:
        os.umask(mask)


def test_reconstruct_data_of_another_shape_fails_with_both_shapes(pipeline, tmp_path):
    folder = tmp_path / "rgb"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    result = runner.invoke(
        app, ["reconstruct", str(folder), "-m", str(pipeline["run"]), "-o", str(tmp_path / "r.png")]
    )
    assert result.exit_code == 1
    assert "(1, 8, 8)" in result.output and "(3, 16, 16)" in result.output
    assert str(pipeline["run"]) in result.output
    assert not (tmp_path / "r.png").exists()


def test_pixels_sample_draws_from_the_likelihood_seeded(model, tmp_path, monkeypatch):
    calls = []
    original = model.model.likelihood.sample

    def counting(params):
        calls.append(len(params))
        return original(params)

    monkeypatch.setattr(model.model.likelihood, "sample", counting)
    mean = sample(model, 8, seed=4)
    drawn = sample(model, 8, seed=4, pixels="sample")
    again = sample(model, 8, seed=4, pixels="sample")
    assert calls == [8, 8]  # the likelihood's own sample, only when asked
    np.testing.assert_array_equal(drawn.z, mean.z)  # the same latents, other pixels
    assert not np.array_equal(drawn.images, mean.images)
    np.testing.assert_array_equal(drawn.images, again.images)  # seeded
    with pytest.raises(UsageError, match="unknown --pixels 'median'; choose one of: mean, sample"):
        sample(model, 2, pixels="median")


def test_cli_sample_pixels_sample(pipeline, tmp_path):
    out = tmp_path / "drawn.png"
    args = ["sample", "--model", str(pipeline["run"]), "-n", "4", "-o", str(out)]
    result = runner.invoke(app, [*args, "--pixels", "sample"])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    bad = runner.invoke(app, [*args, "--pixels", "median"])
    assert bad.exit_code == 2 and "choose one of: mean, sample" in bad.output
