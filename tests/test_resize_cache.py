"""Batched resize (Pillow's bilinear filter as matrices) and the cache of converted arrays."""

from __future__ import annotations

import numpy as np
import pytest

from tests.dataset_fixtures import idx_folder, write_idx
from vaekit.data import load_dataset, resize_batch, resize_square
from vaekit.sources.cache import cache_dir


@pytest.mark.parametrize(
    ("shape", "size"), [((2, 1, 28, 28), 16), ((3, 3, 20, 30), 8), ((2, 3, 8, 6), 16)]
)
def test_resize_batch_agrees_with_pillow_to_within_one(shape, size):
    """Shrinking, non-square with a centre crop, and enlarging."""
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    batched = resize_batch(images, size, chunk=2)
    assert batched.shape == (shape[0], shape[1], size, size) and batched.dtype == np.uint8
    one_by_one = np.stack([resize_square(image, size) for image in images])
    assert np.abs(batched.astype(int) - one_by_one.astype(int)).max() <= 1


def test_idx_conversion_is_cached_and_refreshed_when_the_files_change(tmp_path):
    idx_folder(tmp_path / "mnist")
    first = load_dataset(tmp_path / "mnist", image_size=16, channels=3)
    assert first.images.shape == (10, 3, 16, 16)
    assert len(list(cache_dir().glob("idx-converted-*.npy"))) == 1
    again = load_dataset(tmp_path / "mnist", image_size=16, channels=3)
    assert isinstance(again.images, np.memmap)  # read back, not converted again
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(first.images))
    assert again.fingerprint == first.fingerprint
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((4, 28, 28)), True)
    changed = load_dataset(tmp_path / "mnist", image_size=16, channels=3)
    assert not np.asarray(changed.images[6:]).any()  # the new test images, not the cached ones
    load_dataset(tmp_path / "mnist", image_size=8)
    assert len(list(cache_dir().glob("idx-converted-*.npy"))) == 2  # keyed by the options


def test_arrays_conversion_is_cached(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(1).integers(0, 256, (5, 12, 10), dtype=np.uint8))
    first = load_dataset(path, image_size=8)
    assert first.images.shape == (5, 1, 8, 8)
    assert isinstance(load_dataset(path, image_size=8).images, np.memmap)
    assert load_dataset(path).images.shape == (5, 1, 12, 10)  # no options, no conversion
