"""The example plugin, tested as its author would: the contract kit on each component, then
the whole pipeline through the installed ``vaekit`` command with every component swapped in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit import testing
from vaekit.plugins import PluginHost


def test_components_registered_through_the_entry_point():
    host = PluginHost()
    for family, name in (
        ("encoders", "linear"),
        ("priors", "mixture"),
        ("likelihoods", "logistic"),
        ("kl_schedules", "step"),
        ("datasets", "csv"),
        ("models", "iwae"),
    ):
        assert host.get(family, name).plugin == "example", (family, name)
    assert host.plugins["example"].distribution == "vaekit-example"
    encoder = host.create("encoders", "linear", (1, 8, 8), features=32)
    assert encoder(torch.rand(4, 1, 8, 8)).shape == (4, 32)


def test_the_contract_kit_passes():
    testing.check_encoder_decoder("linear", "mlp", params_per_channel=2)
    testing.check_prior("mixture", latent_dim=2, options={"components": 3})
    testing.check_likelihood("logistic", normalised="real")
    testing.check_kl_schedule("step")


def write_csv(path: Path, n: int = 600) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(digits.images[:n] * 16, 0, 255).astype(int).reshape(n, 64)
    with open(path, "w") as fh:
        fh.write("label," + ",".join(f"p{i}" for i in range(64)) + "\n")
        for label, row in zip(digits.target[:n], pixels, strict=True):
            fh.write(f"{label}," + ",".join(map(str, row)) + "\n")


def test_dataset_source_passes_the_kit(tmp_path):
    write_csv(tmp_path / "digits.csv", n=20)
    testing.check_dataset_source("csv", tmp_path / "digits.csv")


def vaekit(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).with_name("vaekit")
    result = subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


@pytest.mark.skipif(
    not Path(sys.executable).with_name("vaekit").exists(), reason="vaekit is not installed"
)
def test_the_pipeline_with_every_component_from_this_package(tmp_path):
    write_csv(tmp_path / "digits.csv")
    vaekit(
        "train",
        "digits.csv",
        "--encoder",
        "linear",
        "--decoder",
        "mlp",
        "--decoder-opt",
        "hidden=64",
        "--prior",
        "mixture",
        "--prior-opt",
        "components=3",
        "--likelihood",
        "logistic",
        "--kl-schedule",
        "step",
        "--model-kind",
        "iwae",
        "--model-opt",
        "k=3",
        "--latent-dim",
        "2",
        "--epochs",
        "3",
        "--name",
        "ex",
        cwd=tmp_path,
    )
    run = tmp_path / "runs" / "ex"
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["source"] == "csv"
    assert config["model"]["kind"] == "iwae" and config["model"]["kind_options"] == {"k": 3}
    assert config["plugins"]["example"]["distribution"] == "vaekit-example"
    log = (run / "example-log.csv").read_text().splitlines()
    assert log[0] == "epoch,loss" and len(log) == 4  # the lifecycle logger ran each epoch
    assert "ex\tepochs=3" in vaekit("example-runs", cwd=tmp_path)  # the plugin's command

    vaekit("encode", "digits.csv", "-o", "latents.h5", cwd=tmp_path)
    vaekit("fit-cluster", "--label", "3", cwd=tmp_path)
    assert (tmp_path / "clusters" / "3.json").is_file()

    # sample --prior draws from the trained mixture, not from N(0, I)
    vaekit("sample", "--prior", "-n", "4000", "--save", "z.npy", "-o", "prior.png", cwd=tmp_path)
    z = np.load(tmp_path / "z.npy")
    from vaekit.runs import open_run

    prior = open_run(run).model.prior
    weights = torch.softmax(prior.logits, 0).detach().numpy()
    means = prior.means.detach().numpy()
    variances = np.exp(2 * prior.log_scales.detach().numpy())
    mean = weights @ means
    var = weights @ (variances + means**2) - mean**2
    assert np.linalg.norm(mean) > 3  # far from N(0, I)'s mean
    np.testing.assert_allclose(z.mean(0), mean, atol=0.1 + 0.05 * np.sqrt(var).max())
    np.testing.assert_allclose(z.var(0), var, rtol=0.15)
