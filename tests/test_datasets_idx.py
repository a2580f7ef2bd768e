"""The idx source: gzipped and plain IDX files, splits, Fashion-MNIST class names."""

from __future__ import annotations

import numpy as np
import pytest

from tests.dataset_fixtures import idx_folder, write_idx
from vaekit.data import SPLITS, load_dataset, resolve_source
from vaekit.errors import DataError
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
