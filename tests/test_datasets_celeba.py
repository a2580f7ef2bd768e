"""The celeba source on a fixture with the real file's quirks, and the synthetic faces."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.dataset_fixtures import REPO, celeba_folder, corrupt_file, synthetic_faces
from vaekit.data import SPLITS, load_dataset, resolve_source
from vaekit.errors import DataError


def test_celeba_layout(tmp_path):
    celeba_folder(tmp_path)
    assert resolve_source(tmp_path, None)[0] == "celeba"  # before folder, which also matches
    data = load_dataset(tmp_path)
    assert data.source == "celeba" and data.images.shape == (3, 3, 12, 10)
    assert data.attribute_names == ["5_o_Clock_Shadow", "Eyeglasses", "Smiling"]
    assert data.attributes.tolist() == [
        [False, True, True],
        [True, False, False],
        [False, False, True],
    ]
    assert data.ids.tolist() == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert [SPLITS[s] for s in data.split] == ["train", "val", "test"]
    assert data.labels is None


def test_celeba_options_and_no_partition(tmp_path):
    celeba_folder(tmp_path, partition=None)
    data = load_dataset(tmp_path, image_size=8, channels=1)
    assert data.images.shape == (3, 1, 8, 8) and data.split is None


def test_celeba_kaggle_nesting(tmp_path):
    celeba_folder(tmp_path)
    inner = tmp_path / "img_align_celeba" / "img_align_celeba"
    inner.mkdir()
    for f in (tmp_path / "img_align_celeba").glob("*.jpg"):
        f.rename(inner / f.name)
    assert len(load_dataset(tmp_path)) == 3


def test_attribute_row_naming_missing_image(tmp_path):
    celeba_folder(tmp_path)
    (tmp_path / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(DataError, match=r"line 4 names '000002\.jpg'.*remove its row"):
        load_dataset(tmp_path)


def test_bad_attribute_row(tmp_path):
    celeba_folder(tmp_path)
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(path.read_text() + "000004.jpg  1 -1\n")
    with pytest.raises(DataError, match=r"line 6: 2 values for 3 attributes"):
        load_dataset(tmp_path)


def test_corrupt_celeba_image(tmp_path):
    celeba_folder(tmp_path)
    corrupt_file(tmp_path / "img_align_celeba" / "000003.jpg")
    with pytest.raises(DataError, match=r"000003\.jpg.*--skip-bad"):
        load_dataset(tmp_path)
    data = load_dataset(tmp_path, skip_bad=True)
    assert data.ids.tolist() == ["000001.jpg", "000002.jpg"]
    assert data.attributes.shape == (2, 3) and data.split.tolist() == [0, 1]


def test_synthetic_faces_generator(tmp_path):
    synthetic_faces()["generate"](tmp_path / "faces", n=40, size=16, seed=1)
    data = load_dataset(tmp_path / "faces")
    assert data.source == "celeba" and data.images.shape == (40, 3, 16, 16)
    names = [n.lower() for n in data.attribute_names]
    for wanted in ("smiling", "eyeglasses", "blond_hair"):
        assert wanted in names
    smiling = data.attributes[:, names.index("smiling")]
    assert 0 < smiling.sum() < 40
    assert set(data.split.tolist()) == {0, 1, 2}
    # the attributes are visible: smiling faces differ from the others around the mouth
    images = data.images.astype(np.float32)
    assert not np.allclose(images[smiling].mean(0), images[~smiling].mean(0), atol=2)
    # hair colour: above the forehead, blond hair is brighter than black hair
    bare = ~data.attributes[:, [names.index("wearing_hat"), names.index("bald")]].any(1)
    blond = data.attributes[:, names.index("blond_hair")] & bare
    black = data.attributes[:, names.index("black_hair")] & bare
    top = images[:, :, 2:4, 6:10].mean(axis=(1, 2, 3))
    assert blond.any() and black.any()
    assert top[blond].mean() > top[black].mean() + 50


def test_synthetic_faces_cli_is_deterministic(tmp_path):
    script = str(REPO / "datasets" / "synthetic_faces.py")
    for out in ("a", "b"):
        subprocess.run(
            [sys.executable, script, str(tmp_path / out), "--n", "5", "--size", "12"],
            check=True,
            capture_output=True,
        )
    a = (tmp_path / "a" / "list_attr_celeba.txt").read_text()
    assert a == (tmp_path / "b" / "list_attr_celeba.txt").read_text()
    assert a.splitlines()[0] == "5"
    assert "  1" in a and " -1" in a  # CelebA's irregular spacing


def test_every_synthetic_attribute_changes_the_pixels():
    """Each attribute, switched on in an otherwise identical face, is visible at 32 px."""
    faces = synthetic_faces()
    base = dict.fromkeys(faces["ATTRIBUTES"], False) | {"Brown_Hair": True, "No_Beard": True}
    switched = {name: {name: not base[name]} for name in faces["ATTRIBUTES"]}
    switched["Brown_Hair"] = {"Brown_Hair": False, "Black_Hair": True}  # exclusive colours
    for colour in ("Black_Hair", "Blond_Hair", "Gray_Hair"):
        switched[colour] = {"Brown_Hair": False, colour: True}
    for name, change in switched.items():
        for seed in range(5):
            images = [
                np.asarray(faces["draw_face"](a, 32, np.random.default_rng(seed)), dtype=int)
                for a in (base, base | change)
            ]
            changed = int((np.abs(images[0] - images[1]).max(axis=2) > 24).sum())
            assert changed >= 6, f"{name} (seed {seed}) changes only {changed} pixels"
