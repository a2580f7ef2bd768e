"""The idx source: gzipped and plain IDX files, splits, Fashion-MNIST class names."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from tests.dataset_fixtures import idx_folder, write_idx
from vaekit.data import SPLITS, load_dataset, resolve_source
from vaekit.errors import DataError, UsageError
from vaekit.sources.idx import FASHION_CLASSES, FASHION_TRAIN_HEAD, read_idx


@pytest.mark.parametrize("compress", [True, False])
def test_idx_train_and_t10k(tmp_path, compress):
    idx_folder(tmp_path / "mnist", compress=compress)
    assert resolve_source(tmp_path / "mnist", None)[0] == "idx"
    data = load_dataset(tmp_path / "mnist")
    assert data.source == "idx" and data.images.shape == (10, 1, 28, 28)
    assert [SPLITS[s] for s in data.split] == ["train"] * 6 + ["test"] * 4
    assert data.class_names == [str(i) for i in range(6)]  # not Fashion-MNIST
    assert data.labels.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    assert data.ids[0] == "train/0" and data.ids[-1] == "t10k/3"


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x-idx3-ubyte", array)), array)
    np.testing.assert_array_equal(
        read_idx(write_idx(tmp_path / "y-idx3-ubyte.gz", array, compress=True)), array
    )


def test_fashion_mnist_recognised(tmp_path):
    idx_folder(tmp_path / "some-name", n_train=16, train_labels=FASHION_TRAIN_HEAD)
    assert load_dataset(tmp_path / "some-name").class_names == FASHION_CLASSES
    idx_folder(tmp_path / "fashion-mnist", n_train=6)
    assert load_dataset(tmp_path / "fashion-mnist").class_names[7] == "sneaker"


def test_idx_image_options(tmp_path):
    idx_folder(tmp_path)
    assert load_dataset(tmp_path, image_size=16, channels=3).images.shape == (10, 3, 16, 16)


def test_truncated_idx(tmp_path):
    idx_folder(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_dataset(tmp_path)


def test_label_count_mismatch(tmp_path):
    idx_folder(tmp_path, compress=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="3 labels for 4 images"):
        load_dataset(tmp_path)


def _not_idx(path):
    """Replace the file at ``path`` with bytes that are no IDX file: reading it fails."""
    path.write_bytes(b"not an IDX file")


@pytest.mark.parametrize(
    ("split", "unread"), [("train", "t10k"), ("val", "t10k"), ("test", "train")]
)
def test_a_split_reads_only_its_own_image_files(tmp_path, split, unread):
    idx_folder(tmp_path, n_train=20, n_test=5)
    _not_idx(tmp_path / f"{unread}-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="not an IDX file"):
        load_dataset(tmp_path)  # the whole data reads it
    data = load_dataset(tmp_path, split=split)
    assert len(data) == (5 if split == "test" else 20)
    assert not any(i.startswith(unread) for i in data.ids)


@pytest.mark.parametrize("compress", [True, False])
def test_rows_of_every_split_are_those_of_a_whole_read(tmp_path, compress):
    idx_folder(tmp_path, n_train=50, n_test=12, compress=compress)
    whole = load_dataset(tmp_path).with_splits(0.2, seed=3)
    assert np.bincount(whole.split).tolist() == [40, 10, 12]
    for split in SPLITS:
        part = load_dataset(tmp_path, split=split).with_splits(0.2, seed=3)
        expected, got = whole.require_split(split), part.require_split(split)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(got.images, expected.images)
        np.testing.assert_array_equal(got.labels, expected.labels)
        np.testing.assert_array_equal(got.split, expected.split)
        assert got.class_names == expected.class_names


def test_class_names_do_not_depend_on_the_split(tmp_path):
    # test labels 0..3 only, training labels up to 5: the names come from every label file
    idx_folder(tmp_path / "mnist", n_train=6, n_test=4)
    assert load_dataset(tmp_path / "mnist", split="test").class_names == [str(i) for i in range(6)]
    # Fashion-MNIST recognised by its first training labels, when only t10k images are read
    idx_folder(tmp_path / "data", n_train=16, train_labels=FASHION_TRAIN_HEAD)
    assert load_dataset(tmp_path / "data", split="test").class_names == FASHION_CLASSES


def test_a_split_the_files_lack_reads_everything_and_names_the_splits(tmp_path):
    idx_folder(tmp_path, n_train=8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    data = load_dataset(tmp_path, split="test")
    assert len(data) == 8
    with pytest.raises(UsageError, match="no 'test' images; its splits are: train"):
        data.require_split("test")


def test_image_files_of_different_sizes_are_refused(tmp_path):
    idx_folder(tmp_path, compress=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 14, 14), np.uint8))
    with pytest.raises(DataError, match=r"images of shape \(1, 14, 14\)"):
        load_dataset(tmp_path)


def test_gzip_header_promising_more_than_deflate_can_hold_is_refused(tmp_path):
    array = np.zeros((2, 28, 28), np.uint8)
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", array, compress=True)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:4] + struct.pack(">iii", 100_000, 28, 28) + raw[16:]))
    with pytest.raises(DataError, match="more than its .* compressed bytes can hold"):
        read_idx(path)


def test_a_file_is_decompressed_into_the_array_without_a_whole_copy(tmp_path, monkeypatch):
    import vaekit.sources.idx as idx

    array = np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", array, compress=True)
    sizes = []
    real = gzip.GzipFile.readinto

    def readinto(self, buffer):
        sizes.append(len(memoryview(buffer).cast("B")))
        return real(self, buffer)

    monkeypatch.setattr(gzip.GzipFile, "readinto", readinto)
    monkeypatch.setattr(idx, "BLOCK", 4096)
    np.testing.assert_array_equal(read_idx(path), array)
    assert max(sizes) == 4096 and sum(sizes) == array.nbytes
