"""Datasets through the command line: detection, --dataset, --skip-bad, one-line errors."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from tests.dataset_fixtures import (
    celeba_folder,
    class_folder,
    corrupt_file,
    idx_folder,
    write_image,
)
from vaekit.cli import app

runner = CliRunner()
TINY = ["--encoder", "mlp", "--encoder-opt", "hidden=8", "--decoder-opt", "hidden=8", "-z", "2"]
TINY += ["--batch-size", "64", "--accelerator", "cpu", "--epochs", "1"]


def train(tmp_path, *args: str):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", *args, *TINY, "--runs-dir", str(runs), "--name", "t"])
    return result, runs


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_folder_trains_with_class_names(tmp_path):
    class_folder(tmp_path / "data", per_class=4)
    result, runs = train(tmp_path, str(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    config = json.loads((runs / "t" / "config.json").read_text())
    assert config["data"]["source"] == "folder"
    assert config["data"]["class_names"] == ["cat", "dog"]


def test_celeba_trains_and_keeps_attribute_names(tmp_path):
    celeba_folder(tmp_path / "celeb")
    result, runs = train(tmp_path, str(tmp_path / "celeb"), "--image-size", "8")
    assert result.exit_code == 0, result.output
    config = json.loads((runs / "t" / "config.json").read_text())
    assert config["data"]["source"] == "celeba"
    assert config["data"]["attribute_names"] == ["5_o_Clock_Shadow", "Eyeglasses", "Smiling"]
    assert config["data"]["image_shape"] == [3, 8, 8]


def test_idx_trains_with_channels_option(tmp_path):
    idx_folder(tmp_path / "fashion", n_train=8)
    result, runs = train(tmp_path, str(tmp_path / "fashion"), "--channels", "3")
    assert result.exit_code == 0, result.output
    config = json.loads((runs / "t" / "config.json").read_text())
    assert config["data"]["class_names"][0] == "t-shirt/top"
    assert config["data"]["image_shape"] == [3, 28, 28]


def test_dataset_option_forces_a_source(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros((4, 4, 4), np.uint8))
    result, _ = train(tmp_path, str(path), "--dataset", "folder")
    assert result.exit_code == 1
    assert "is not a folder" in error_line(result)
    result, _ = train(tmp_path, str(path), "--dataset", "arrays")
    assert result.exit_code == 0, result.output


def test_unknown_dataset_name_exits_2(tmp_path):
    class_folder(tmp_path / "data")
    result, runs = train(tmp_path, str(tmp_path / "data"), "--dataset", "foldr")
    assert result.exit_code == 2
    assert "did you mean 'folder'" in result.output
    assert not runs.exists()


def test_corrupt_image_exits_1_and_skip_bad_trains(tmp_path):
    class_folder(tmp_path / "data", per_class=4)
    bad = corrupt_file(tmp_path / "data" / "cat" / "broken.jpg")
    result, runs = train(tmp_path, str(tmp_path / "data"))
    assert result.exit_code == 1
    line = error_line(result)
    assert str(bad) in line and "--skip-bad" in line
    assert not runs.exists()
    result, runs = train(tmp_path, str(tmp_path / "data"), "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image" in result.output
    config = json.loads((runs / "t" / "config.json").read_text())
    assert config["data"]["n"] == 8 and config["train"]["skip_bad"] is True


def test_errors_write_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    write_image(tmp_path / "mixed" / "a.png", size=(8, 8))
    write_image(tmp_path / "mixed" / "b.png", size=(9, 8))
    write_image(tmp_path / "csv" / "a.png")
    (tmp_path / "csv" / "labels.csv").write_text("filename,label\nmissing.png,x\n")
    celeba_folder(tmp_path / "celeb")
    (tmp_path / "celeb" / "img_align_celeba" / "000001.jpg").unlink()
    cases = [
        (["empty", "--dataset", "folder"], "no images found"),
        (["notes"], "holds none of the known kinds of data"),
        (["nowhere"], "does not exist"),
        (["mixed"], "pass --image-size"),
        (["csv"], "names images that are not in the folder"),
        (["celeb"], "names '000001.jpg', which is not in"),
    ]
    for (name, *options), message in cases:
        result, runs = train(tmp_path, str(tmp_path / name), *options)
        assert result.exit_code == 1, (name, result.output)
        assert message in error_line(result), (name, result.output)
        assert "Traceback" not in result.output
        assert not runs.exists(), name
