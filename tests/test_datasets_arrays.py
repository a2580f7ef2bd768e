"""The arrays source: .npz, .npy and HDF5 with images and optional labels."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from vaekit.data import SPLITS, load_dataset, resolve_source
from vaekit.errors import DataError

rng = np.random.default_rng(0)


def test_npz_nhwc_with_labels(tmp_path):
    path = tmp_path / "data.npz"
    images = rng.integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=np.array([0, 1, 1, 0, 2]), class_names=["a", "b", "c"])
    assert resolve_source(path, None)[0] == "arrays"
    data = load_dataset(path)
    assert data.images.shape == (5, 3, 6, 6)
    np.testing.assert_array_equal(data.images[1], images[1].transpose(2, 0, 1))
    assert data.class_names == ["a", "b", "c"] and data.labels.tolist() == [0, 1, 1, 0, 2]


def test_npy_floats(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, rng.random((4, 5, 5)).astype(np.float32))
    data = load_dataset(path)
    assert data.images.shape == (4, 1, 5, 5) and data.images.dtype == np.uint8
    assert data.labels is None


def test_keras_style_splits(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        y_train=np.array([1, 2, 3]),
        x_test=rng.integers(0, 256, (2, 4, 4), dtype=np.uint8),
        y_test=np.array([0, 9]),
    )
    data = load_dataset(path)
    assert [SPLITS[s] for s in data.split] == ["train"] * 3 + ["test"] * 2
    assert data.labels.tolist() == [1, 2, 3, 0, 9] and len(data.class_names) == 10


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_keras_style_splits_read_only_the_images_a_split_needs(tmp_path, monkeypatch, suffix):
    """``load_dataset(..., split=)`` leaves the other part's images unread; the rows read
    keep a whole read's ids, labels, class names and attributes."""
    from vaekit.sources import arrays as source

    path = tmp_path / f"mnist{suffix}"
    parts = dict(
        x_train=rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        y_train=np.array(["b", "c", "b"]),
        x_test=rng.integers(0, 256, (2, 4, 4), dtype=np.uint8),
        y_test=np.array(["a", "c"]),
        attributes=np.array([[1], [0], [1], [1], [0]], dtype=np.int8),
    )
    if suffix == ".npz":
        np.savez(path, **parts)
    else:
        with h5py.File(path, "w") as f:
            for key, value in parts.items():
                f[key] = value.astype("S") if value.dtype.kind == "U" else value
    whole = load_dataset(path)
    converted = []
    real = source._to_nchw
    monkeypatch.setattr(
        source, "_to_nchw", lambda a, *rest: converted.append(len(a)) or real(a, *rest)
    )
    for split, rows, read in (
        ("test", [3, 4], [2]),
        ("train", [0, 1, 2], [3]),
        ("val", [0, 1, 2], [3]),
    ):
        converted.clear()
        part = load_dataset(path, split=split)
        assert converted == read  # the other part's images were never converted
        np.testing.assert_array_equal(part.images, whole.images[rows])
        assert part.ids.tolist() == whole.ids[rows].tolist()
        assert part.class_names == whole.class_names == ["a", "b", "c"]
        assert part.labels.tolist() == whole.labels[rows].tolist()
        assert part.attributes.tolist() == whole.attributes[rows].tolist()
    if suffix == ".npz":  # nor read: training images cut short (a whole header, no data)
        import io
        import zipfile

        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (3, 4, 4)}
        )
        members = {}
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        members["x_train.npy"] = header.getvalue()
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)
        with pytest.raises(DataError):
            load_dataset(path)
        assert load_dataset(path, split="test").ids.tolist() == ["3", "4"]


def test_hdf5_with_attributes(tmp_path):
    path = tmp_path / "faces.h5"
    with h5py.File(path, "w") as f:
        f["images"] = rng.integers(0, 256, (4, 3, 8, 8), dtype=np.uint8)
        f["attributes"] = np.array([[1, 0], [0, 0], [1, 1], [0, 1]], dtype=np.int8)
        f["attribute_names"] = np.array([b"Smiling", b"Eyeglasses"])
        f["split"] = np.array([b"train", b"train", b"val", b"test"])
    data = load_dataset(path, image_size=4)
    assert data.images.shape == (4, 3, 4, 4)
    assert data.attribute_names == ["Smiling", "Eyeglasses"]
    assert data.attributes[:, 0].tolist() == [True, False, True, False]
    assert data.split.tolist() == [0, 0, 1, 2]


def test_hdf5_without_images_is_not_detected(tmp_path):
    path = tmp_path / "latents.h5"
    with h5py.File(path, "w") as f:
        f["mu"] = np.zeros((3, 2), np.float32)
    with pytest.raises(DataError, match="none of the known kinds"):
        resolve_source(path, None)
    with pytest.raises(DataError, match="no images array.*mu"):
        load_dataset(path, dataset="arrays")


def test_bad_values(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.full((2, 4, 4), 3.0))
    with pytest.raises(DataError, match=r"store them in \[0, 1\]"):
        load_dataset(path)


def test_a_split_the_keras_style_file_lacks_reads_what_it_has(tmp_path):
    path = tmp_path / "train_only.npz"
    np.savez(path, x_train=rng.integers(0, 256, (3, 4, 4), dtype=np.uint8), y_train=[0, 1, 0])
    part = load_dataset(path, split="test")  # no x_test: nothing to leave unread
    assert len(part) == 3 and not (part.split == SPLITS.index("test")).any()
