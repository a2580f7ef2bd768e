"""The folder source: nested class folders, split folders, labels CSV, image options, cache."""

from __future__ import annotations

import os

import numpy as np
import pytest

import vaekit.imageio
from tests.dataset_fixtures import class_folder, corrupt_file, write_image
from vaekit.data import SPLITS, UNLABELLED, load_dataset, resolve_source
from vaekit.errors import DataError, UsageError
from vaekit.imageio import read_image
from vaekit.sources.cache import cache_dir


def test_read_image_channels_and_size(tmp_path):
    path = write_image(tmp_path / "a.png", size=(20, 10), channels=3)
    assert read_image(path).shape == (3, 10, 20)
    assert read_image(path, channels=1).shape == (1, 10, 20)
    image = read_image(path, channels=3, image_size=6)
    assert image.shape == (3, 6, 6) and image.dtype == np.uint8
    gray = write_image(tmp_path / "g.png", channels=1)
    assert read_image(gray).shape == (1, 8, 8)
    assert read_image(gray, channels=3).shape == (3, 8, 8)


def test_read_image_corrupt_names_file(tmp_path):
    with pytest.raises(DataError, match="bad.png"):
        read_image(corrupt_file(tmp_path / "bad.png"))


def test_nested_class_folders(tmp_path):
    class_folder(tmp_path / "data")
    assert resolve_source(tmp_path / "data", None)[0] == "folder"
    data = load_dataset(tmp_path / "data")
    assert data.source == "folder" and data.images.shape == (6, 3, 8, 8)
    assert data.class_names == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert "cat/deeper/1.png" in data.ids.tolist()
    assert data.split is None  # no split of its own: a seeded one is made later
    with_splits = data.with_splits(0.34, seed=0)
    assert (with_splits.split == SPLITS.index("val")).sum() == 2


def test_loose_images_are_unlabelled(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.bmp", fmt="BMP")
    data = load_dataset(tmp_path)
    assert len(data) == 2 and data.labels is None and data.class_names is None


def test_split_folders(tmp_path):
    class_folder(tmp_path / "train", per_class=2)
    class_folder(tmp_path / "test", per_class=1)
    data = load_dataset(tmp_path)
    assert data.class_names == ["cat", "dog"]
    assert sorted(SPLITS[s] for s in set(data.split.tolist())) == ["test", "train"]
    test = data.require_split("test")
    assert len(test) == 2 and set(test.labels.tolist()) == {0, 1}


def test_labels_csv_classes(tmp_path):
    for name in ("a.png", "b.png", "sub/c.png"):
        write_image(tmp_path / name)
    (tmp_path / "labels.csv").write_text("filename,label\na.png,sneaker\nsub/c.png,bag\n")
    data = load_dataset(tmp_path)
    assert data.class_names == ["bag", "sneaker"]
    by_id = dict(zip(data.ids.tolist(), data.labels.tolist(), strict=True))
    assert by_id == {"a.png": 1, "b.png": UNLABELLED, "sub/c.png": 0}


def test_labels_csv_attributes(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png")
    (tmp_path / "attrs.csv").write_text("file,Smiling,Eyeglasses\nb.png,1,0\na.png,0,1\n")
    data = load_dataset(tmp_path, labels="attrs.csv")
    assert data.attribute_names == ["Smiling", "Eyeglasses"]
    assert data.attributes.tolist() == [[False, True], [True, False]]
    assert data.labels is None


def test_labels_csv_unknown_file(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("filename,label\na.png,x\nghost.png,y\n")
    with pytest.raises(DataError, match=r"not in the folder: .ghost\.png"):
        load_dataset(tmp_path)


def test_mixed_sizes_name_two_files(tmp_path):
    write_image(tmp_path / "a.png", size=(8, 8))
    write_image(tmp_path / "b.png", size=(12, 9))
    with pytest.raises(DataError, match=r"a\.png.*8x8.*b\.png.*12x9.*--image-size"):
        load_dataset(tmp_path)
    data = load_dataset(tmp_path, image_size=6, channels=1)
    assert data.images.shape == (2, 1, 6, 6)


def test_mixed_modes_become_rgb(tmp_path):
    write_image(tmp_path / "a.png", channels=1)
    write_image(tmp_path / "b.png", channels=3)
    assert load_dataset(tmp_path).images.shape == (2, 3, 8, 8)


def test_corrupt_image_stops_with_hint_or_is_skipped(tmp_path, capsys):
    class_folder(tmp_path, per_class=2)
    corrupt_file(tmp_path / "dog" / "broken.png")
    with pytest.raises(DataError, match=r"broken\.png.*--skip-bad"):
        load_dataset(tmp_path)
    data = load_dataset(tmp_path, skip_bad=True)
    assert len(data) == 4 and "dog/broken.png" not in data.ids.tolist()
    assert "skipped 1 unreadable" in capsys.readouterr().err
    # the cache remembers the bad file: without --skip-bad it still stops
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_dataset(tmp_path / "empty", dataset="folder")
    with pytest.raises(DataError, match="no images found"):  # the same words when detected
        load_dataset(tmp_path / "empty")


def test_decoded_once_then_read_from_cache(tmp_path, monkeypatch):
    class_folder(tmp_path / "data")
    first = load_dataset(tmp_path / "data")
    assert isinstance(first.images, np.memmap)
    assert list(cache_dir().glob("folder-*.npy"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(vaekit.imageio, "read_image", no_decoding)
    second = load_dataset(tmp_path / "data")
    np.testing.assert_array_equal(first.images, second.images)
    assert second.fingerprint == first.fingerprint


def test_cache_invalidated_when_source_changes(tmp_path):
    class_folder(tmp_path / "data")
    first = load_dataset(tmp_path / "data")
    write_image(tmp_path / "data" / "cat" / "new.png", seed=99)
    second = load_dataset(tmp_path / "data")
    assert len(second) == len(first) + 1
    target = tmp_path / "data" / "dog" / "0.png"
    write_image(target, seed=123)  # same name and size, new pixels and mtime
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_dataset(tmp_path / "data")
    row = third.ids.tolist().index("dog/0.png")
    np.testing.assert_array_equal(third.images[row], read_image(target))
    assert third.fingerprint != second.fingerprint


def test_cache_keyed_by_options(tmp_path):
    class_folder(tmp_path / "data")
    assert load_dataset(tmp_path / "data", channels=1).images.shape[1] == 1
    assert load_dataset(tmp_path / "data").images.shape[1] == 3
    assert len(list(cache_dir().glob("folder-*.npy"))) == 2


def test_seeded_split_and_missing_split_message(tmp_path):
    class_folder(tmp_path / "data", per_class=5)
    data = load_dataset(tmp_path / "data").with_splits(0.2, seed=3)
    again = load_dataset(tmp_path / "data").with_splits(0.2, seed=3)
    np.testing.assert_array_equal(data.split, again.split)  # same seed, same split
    assert len(data.require_split("val")) == 2 and len(data.require_split("train")) == 8
    with pytest.raises(UsageError, match="no 'test' images; its splits are: train, val"):
        data.require_split("test")


def test_truncated_pixels_are_skipped_and_the_cache_stays_consistent(tmp_path):
    root = class_folder(tmp_path / "data", per_class=3, size=(16, 16))
    victim = sorted(root.rglob("*.png"))[0]
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) // 2])  # the header reads, the pixels do not
    with pytest.raises(DataError, match="--skip-bad"):
        load_dataset(root)
    data = load_dataset(root, skip_bad=True)
    assert len(data) == len(data.ids) == 5
    again = load_dataset(root, skip_bad=True)  # from the cache
    assert np.array_equal(again.images, data.images)
    assert not list(cache_dir().rglob("*.npy.npy")) and not list(cache_dir().rglob("*.tmp*"))


def test_a_damaged_cache_is_noticed_and_decoded_again(tmp_path, capsys):
    root = class_folder(tmp_path / "img")
    first = np.array(load_dataset(root).images)
    (array,) = cache_dir().glob("folder-*.npy")
    raw = bytearray(array.read_bytes())
    raw[-40:] = bytes(40)  # zeroed bytes in the pixels
    array.write_bytes(bytes(raw))
    again = load_dataset(root)
    assert "decode cache" in capsys.readouterr().err
    assert np.array_equal(np.array(again.images), first)


def test_a_pipe_named_like_an_image_is_skipped_not_read(tmp_path):
    """A FIFO called x.png would block the read forever (issue 24): only regular files
    count as images."""
    for i in range(3):
        write_image(tmp_path / "img" / f"{i}.png", seed=i)
    os.mkfifo(tmp_path / "img" / "pipe.png")
    data = load_dataset(tmp_path / "img")
    assert len(data) == 3 and not any("pipe" in i for i in data.ids)
