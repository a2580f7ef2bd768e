"""vaekit encode: correctness, preprocessing, never losing data, bad input, CLI, torchrun."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import train_tiny
from vaekit.cli import app
from vaekit.data import ImageDataset, load_dataset, load_training_data
from vaekit.encode import encode_dataset
from vaekit.errors import DataError, OutputExistsError
from vaekit.files import file_sha256
from vaekit.runs import Run, load_model
from vaekit.store import LatentStore

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One tiny MLP VAE trained for an epoch on the digits, shared by this module."""
    return train_tiny(tmp_path_factory.mktemp("encode"), epochs=1).run.path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_latents_match_the_model_and_the_run(tmp_path, run_dir):
    path = encode_dataset(None, tmp_path / "latents.h5", model_dir=run_dir, batch_size=100)
    data = load_dataset()
    model = load_model(run_dir)
    with torch.no_grad():
        q = model.posterior(torch.from_numpy(data.images).float() / 255)
        mu, logvar = q.mean, q.logvar
    with LatentStore.open(path) as store:
        assert (store.n, store.latent_dim) == (len(data), 4)
        got_mu, got_logvar = store.read(slice(None))
        np.testing.assert_allclose(got_mu, mu.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_logvar, logvar.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(store.labels(), data.labels)
        np.testing.assert_array_equal(store.ids(), data.ids)
        assert store.class_names == [str(i) for i in range(10)]
        # the run's own train/val split, reproduced
        config = Run(run_dir).read_config()
        trained = load_training_data(config.train)
        np.testing.assert_array_equal(store.split(), trained.split)
        attrs = store.attrs
        assert attrs["weights_sha256"] == file_sha256(run_dir / "model.safetensors")
        assert json.loads(attrs["model_config"]) == config.model.to_dict()
        assert attrs["dataset_source"] == "digits" and attrs["dataset_location"] == "embedded"
        assert attrs["dataset_fingerprint"] == data.fingerprint
        assert attrs["complete"] is True and attrs["vaekit_version"]
        assert attrs["run_dir"] == str(run_dir)
        assert store.file["mu"].compression == "gzip"


def test_plain_h5py_reads_it_without_vaekit(tmp_path, run_dir):
    path = encode_dataset(None, tmp_path / "latents.h5", model_dir=run_dir)
    script = textwrap.dedent(
        """
        import json, sys
        import h5py
        with h5py.File(sys.argv[1], "r") as f:
            out = {
                "mu": list(f["mu"].shape), "dtype": str(f["mu"].dtype),
                "labels": f["labels"][:5].tolist(),
                "class_names": [s.decode() for s in f["class_names"][:]],
                "ids": f["ids"].asstr()[:3].tolist(),
                "attrs": {k: str(v) for k, v in f.attrs.items()},
            }
        assert "vaekit" not in sys.modules
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    out = json.loads(result.stdout)
    assert out["mu"] == [1797, 4] and out["dtype"] == "float32"
    assert out["labels"] == [0, 1, 2, 3, 4] and out["class_names"][3] == "3"
    assert out["ids"] == ["0", "1", "2"]
    attrs = out["attrs"]
    assert attrs["format"] == "vaekit-latents" and attrs["complete"] == "True"
    assert json.loads(attrs["model_config"])["encoder"] == "mlp"
    assert attrs["dataset_source"] == "digits" and len(attrs["weights_sha256"]) == 64


def test_training_preprocessing_is_applied_by_itself(tmp_path):
    run = train_tiny(tmp_path, epochs=1, image_size=12, name="resized").run
    path = encode_dataset(None, tmp_path / "out" / "latents.h5", model_dir=run.path)
    with LatentStore.open(path) as store:  # the missing folder "out" was created
        assert store.n == 1797
        assert json.loads(store.attrs["image_shape"]) == [1, 12, 12]
        assert json.loads(store.attrs["preprocessing"])["image_size"] == 12


def test_model_that_does_not_fit_fails_before_any_work(tmp_path, run_dir):
    rgb = ImageDataset(
        images=np.zeros((4, 3, 16, 16), np.uint8), ids=np.arange(4), source="x", location="rgb/"
    )
    with pytest.raises(DataError) as info:
        encode_dataset(rgb, tmp_path / "latents.h5", model_dir=run_dir)
    assert "(1, 8, 8)" in str(info.value) and "(3, 16, 16)" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_split_and_samples(tmp_path, run_dir):
    path = encode_dataset(
        None, tmp_path / "val.h5", model_dir=run_dir, split="val", samples=50, compression="lzf"
    )
    with LatentStore.open(path) as store:
        assert store.n == 180 and set(store.split().tolist()) == {1}
        draws = store.read_samples(slice(None))
        assert draws.shape == (180, 50, 4)
        mu, logvar = store.read(slice(None))
        z = (draws - mu[:, None]) / np.exp(0.5 * logvar)[:, None]
        assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
        assert store.file["mu"].compression == "lzf"


def test_attributes_and_queries(tmp_path, run_dir):
    digits = load_dataset()
    rng = np.random.default_rng(0)
    attributes = rng.random((len(digits), 2)) < 0.5
    data = ImageDataset(
        images=digits.images,
        ids=digits.ids,
        source="faces",
        location="memory",
        attributes=attributes,
        attribute_names=["Smiling", "Eyeglasses"],
    )
    path = encode_dataset(data, tmp_path / "faces.h5", model_dir=run_dir)
    with LatentStore.open(path) as store:
        assert store.labels() is None and store.class_names is None
        np.testing.assert_array_equal(store.attributes(), attributes)
        expected = np.flatnonzero(attributes[:, 0] & ~attributes[:, 1])
        np.testing.assert_array_equal(store.select(["smiling and not eyeglasses"]), expected)
        np.testing.assert_array_equal(store.select(["smiling", "~eyeglasses"]), expected)


def test_memory_mapped_data_in_windows_matches_in_memory(tmp_path, run_dir, monkeypatch):
    import vaekit.heap as heap_module

    digits = load_dataset()
    np.save(tmp_path / "images.npy", digits.images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")

    def dataset(images):
        return ImageDataset(
            images=images,
            ids=digits.ids,
            source="digits",
            location="embedded",
            labels=digits.labels,
            class_names=digits.class_names,
        )

    monkeypatch.setattr(heap_module, "WINDOW_BYTES", 100 * 64)  # 64-image windows
    assert heap_module.window_rows(mapped, 64) == 64
    windowed = encode_dataset(dataset(mapped), tmp_path / "a.h5", model_dir=run_dir, batch_size=64)
    whole = encode_dataset(dataset(digits.images), tmp_path / "b.h5", model_dir=run_dir)
    with LatentStore.open(windowed) as a, LatentStore.open(whole) as b:
        np.testing.assert_allclose(a.read(slice(None))[0], b.read(slice(None))[0], atol=1e-5)
        np.testing.assert_array_equal(a.labels(), b.labels())
    # pages handed back are read again from the file, unchanged
    np.testing.assert_array_equal(mapped, digits.images)


def test_existing_file_is_kept_without_overwrite(tmp_path, run_dir):
    out = tmp_path / "latents.h5"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        encode_dataset(None, out, model_dir=run_dir)
    assert out.read_bytes() == b"precious"
    encode_dataset(None, out, model_dir=run_dir, overwrite=True)
    assert LatentStore.open(out).n == 1797
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents.h5"]


def test_failure_inside_the_loop_keeps_the_previous_file(tmp_path, run_dir):
    out = encode_dataset(None, tmp_path / "latents.h5", model_dir=run_dir)
    before = digest(out)

    def explode(done: int, total: int) -> None:
        if done >= 512:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        encode_dataset(
            None, out, model_dir=run_dir, batch_size=64, overwrite=True, progress=explode
        )
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents.h5"]  # temp file removed


KILLED = """
import os, sys, time
import numpy as np
from vaekit.data import ImageDataset, load_dataset
from vaekit.encode import encode_dataset

out, run_dir, marker = sys.argv[1:]
d = load_dataset()
big = ImageDataset(images=np.tile(d.images, (20, 1, 1, 1)), ids=np.arange(20 * len(d)),
                   source="digits", location="embedded", labels=np.tile(d.labels, 20),
                   class_names=d.class_names)

def progress(done, total):
    if done >= 4096 and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(60)

encode_dataset(big, out, model_dir=run_dir, batch_size=64, overwrite=True, progress=progress)
"""


def test_sigkill_midway_leaves_no_complete_looking_file(tmp_path, run_dir):
    out = encode_dataset(None, tmp_path / "latents.h5", model_dir=run_dir)
    before = digest(out)
    marker = tmp_path / "midway"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(out), str(run_dir), str(marker)], cwd=REPO
    )
    try:
        deadline = time.time() + 60
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the encode never got going"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert digest(out) == before
    with LatentStore.open(out) as store:
        assert store.n == 1797
    leftovers = [p for p in tmp_path.iterdir() if p not in (out, marker)]
    assert leftovers, "expected the killed encode's temporary file"
    for path in leftovers:
        assert path.name.startswith(".latents.h5.") and path.name.endswith(".tmp")
        with pytest.raises(DataError, match="incomplete|not a readable|damaged"):
            LatentStore.open(path)
        try:  # what plain h5py sees: a damaged file, or one that says it is incomplete
            with h5py.File(path) as f:
                complete = bool(f.attrs["complete"])
        except (OSError, KeyError):
            complete = False
        assert not complete


def test_torchrun_two_processes_join_into_one_store(tmp_path, run_dir):
    single = encode_dataset(None, tmp_path / "single.h5", model_dir=run_dir, batch_size=64)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "vaekit.cli", "encode", "-o", "joined.h5", "--model", str(run_dir),
        "--batch-size", "64", "--samples", "2",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.h5", "single.h5"]
    with LatentStore.open(tmp_path / "joined.h5") as joined, LatentStore.open(single) as one:
        assert joined.n == one.n == 1797 and joined.attrs["processes"] == 2
        np.testing.assert_allclose(joined.read(slice(None))[0], one.read(slice(None))[0], atol=1e-5)
        np.testing.assert_array_equal(joined.ids(), one.ids())
        np.testing.assert_array_equal(joined.labels(), one.labels())
        np.testing.assert_array_equal(joined.split(), one.split())
        assert joined.read_samples(slice(None)).shape == (1797, 2, 4)
        # each part's statistics, merged in the join, equal one process's
        assert joined.stats().count == one.stats().count == 1797
        np.testing.assert_allclose(joined.stats().mean, one.stats().mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(joined.stats().z_std, one.stats().z_std, rtol=1e-4)


def test_cli_encode_and_inspect(tmp_path, run_dir):
    out = tmp_path / "latents.h5"
    args = ["encode", "-o", str(out), "--model", str(run_dir), "--batch-size", "128"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1,797 rows" in result.output
    before = out.stat().st_mtime_ns
    again = runner.invoke(app, args)  # the same encode: the store is up to date
    assert (
        again.exit_code == 0 and "up to date" in again.output and "nothing written" in again.output
    )
    assert out.stat().st_mtime_ns == before
    forced = runner.invoke(app, [*args, "--overwrite"])
    assert forced.exit_code == 0 and "wrote" in forced.output
    other = runner.invoke(app, [*args, "--split", "val"])  # other options: never silently
    assert other.exit_code == 1 and "--overwrite" in other.output
    bad = runner.invoke(app, [*args, "--overwrite", "--compression", "zip"])
    assert bad.exit_code == 2 and "gzip, lzf, none" in bad.output

    shown = runner.invoke(app, ["inspect", str(out)])
    assert shown.exit_code == 0, shown.output
    for text in ("rows (N)", "1,797", "latent size", "digits", "complete", "yes", "mlp"):
        assert text in shown.output
    assert "178" in shown.output  # rows of class 0

    run_shown = runner.invoke(app, ["inspect", str(run_dir)])
    assert run_shown.exit_code == 0 and "latent size" in run_shown.output

    cluster = tmp_path / "clusters" / "3.json"
    cluster.parent.mkdir()
    cluster.write_text(
        json.dumps(
            {
                "query": "3",
                "n": 183,
                "latent_dim": 4,
                "covariance_type": "full",
                "mean": [0.1, 0.2, 0.3, 0.4],
                "covariance": np.eye(4).tolist(),
                "store": {"path": str(out), "sha256": "ab" * 32},
            }
        )
    )
    cluster_shown = runner.invoke(app, ["inspect", str(cluster)])
    assert cluster_shown.exit_code == 0, cluster_shown.output
    for text in ("query", "183", "covariance_type", "full", "array 4×4"):
        assert text in cluster_shown.output

    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    failed = runner.invoke(app, ["inspect", str(junk)])
    assert failed.exit_code == 1 and "not a readable HDF5 file" in failed.output


def test_encode_data_folder_verbatim_after_train(tmp_path, monkeypatch):
    from vaekit.plugins import get_plugin_host

    if "folder" not in get_plugin_host().registry("datasets"):
        pytest.skip("the folder dataset source is not installed")
    from PIL import Image

    digits = load_dataset()
    for i in range(120):
        label = int(digits.labels[i])
        folder = tmp_path / "data" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.images[i, 0]).save(folder / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    tiny = ["--encoder", "mlp", "--epochs", "1", "--encoder-opt", "hidden=32"]
    tiny += ["--decoder-opt", "hidden=32", "-z", "4", "--accelerator", "cpu"]
    trained = runner.invoke(app, ["train", "data/", *tiny])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, "encode data/ -o latents.h5".split())
    assert result.exit_code == 0, result.output
    with LatentStore.open(tmp_path / "latents.h5") as store:
        assert store.n == 120 and store.attrs["dataset_source"] == "folder"
        assert store.ids()[0].endswith(".png")
    # no DATA: the run's own training data
    assert runner.invoke(app, ["encode", "-o", "again.h5"]).exit_code == 0
    assert LatentStore.open(tmp_path / "again.h5").n == 120


def test_part_files_of_a_killed_torchrun_encode_are_removed_by_the_next_write(tmp_path, run_dir):
    """Parts carry rank 0's PID: once that process is gone, the next encode to the same
    output removes them (issue 24)."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    out = tmp_path / "latents.h5"
    stale = [tmp_path / f".latents.h5.pid{pid}.abc123.part{r}of2.tmp" for r in range(2)]
    for part in stale:
        part.write_bytes(b"partial")
    live = tmp_path / f".latents.h5.pid{os.getpid()}.def456.part0of2.tmp"
    live.write_bytes(b"someone's encode in progress")
    encode_dataset(None, out, model_dir=run_dir)
    assert not any(p.exists() for p in stale)
    assert live.exists()


def test_a_split_of_idx_files_is_encoded_from_its_own_files_with_the_same_rows(tmp_path):
    from tests.dataset_fixtures import idx_folder

    data = idx_folder(tmp_path / "idx", n_train=60, n_test=10)
    run = train_tiny(tmp_path, data=str(data), epochs=1).run.path
    whole = encode_dataset(data, tmp_path / "whole.h5", model_dir=run)
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(b"not an IDX file")  # train never reads it
    for split, code in (("train", 0), ("val", 1)):
        path = encode_dataset(data, tmp_path / f"{split}.h5", model_dir=run, split=split)
        with LatentStore.open(path) as part, LatentStore.open(whole) as everything:
            rows = np.flatnonzero(everything.split() == code)
            assert part.n == len(rows) == (54 if split == "train" else 6)
            np.testing.assert_array_equal(part.ids(), everything.ids()[rows])
            np.testing.assert_array_equal(part.labels(), everything.labels()[rows])
            np.testing.assert_allclose(
                part.read(slice(None))[0], everything.read(rows)[0], atol=1e-5
            )
            assert part.attrs["split_selected"] == split
