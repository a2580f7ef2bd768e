"""The project brief's command lines, verbatim, on a small synthetic CelebA-format folder."""

from __future__ import annotations

import json

import h5py
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.dataset_fixtures import synthetic_faces
from vaekit.cli import app

runner = CliRunner()
SMALL = ["--epochs", "2", "--encoder-opt", "width=8", "--decoder-opt", "width=8", "-z", "4"]


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"vaekit {' '.join(args)}\n{result.output}"
    return result.output


def test_smiling_pipeline_verbatim(tmp_path, monkeypatch):
    synthetic_faces()["generate"](tmp_path / "data", n=96, size=16, seed=3)
    monkeypatch.chdir(tmp_path)

    invoke("train", "data/", "--encoder", "resnet", *SMALL)  # + size options for speed
    invoke("encode", "data/", "-o", "latents.h5")
    invoke("fit-cluster", "--label", "smiling")
    invoke("sample", "--cluster", "smiling", "-o", "grid.png")

    config = json.loads((tmp_path / "runs" / "latest" / "config.json").read_text())
    assert config["model"]["encoder"] == "resnet" and config["data"]["source"] == "celeba"
    with h5py.File(tmp_path / "latents.h5") as store:
        names = [n.decode() if isinstance(n, bytes) else n for n in store["attribute_names"][()]]
        smiling = store["attributes"][:, names.index("Smiling")]
        assert store["mu"].shape == (96, 4)
    cluster = json.loads((tmp_path / "clusters" / "smiling.json").read_text())
    assert cluster["n"] == int(smiling.sum())
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.mode == "RGB" and grid.width > 16


@pytest.mark.slow
def test_train_resnet_verbatim_on_the_embedded_digits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    invoke("train", "--encoder", "resnet")
    rows = (tmp_path / "runs" / "latest" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["loss"] < json.loads(rows[0])["loss"]
