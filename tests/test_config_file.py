"""`vaekit train --config FILE`, `--print-config`, and every run's config.toml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from vaekit.cli import app
from vaekit.config import TrainConfig
from vaekit.config_file import (
    config_toml,
    merge_settings,
    settings_from_tables,
    toml_value,
    tomllib,
)
from vaekit.errors import UsageError

runner = CliRunner()

EXPERIMENT = """\
epochs = 1
latent_dim = 3
batch_size = 64
figures = false

[encoder]
name = "mlp"
hidden = 16

[decoder]
name = "mlp"
hidden = 12

[prior]
name = "mog"
components = 3

[kl_schedule]
name = "warmup"
steps = 40

[accelerator]
name = "cpu"
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def train_args(tmp_path: Path, *more: str) -> list[str]:
    return ["train", "--runs-dir", str(tmp_path / "runs"), *more]


def test_a_config_file_names_every_component_and_a_flag_overrides_one_key(tmp_path):
    config = write(tmp_path, EXPERIMENT)
    result = runner.invoke(
        app,
        train_args(tmp_path, "--config", str(config), "--name", "a", "--decoder-opt", "hidden=9"),
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "runs" / "a" / "config.json").read_text())
    model, train = saved["model"], saved["train"]
    assert (model["encoder"], model["decoder"], model["prior"]) == ("mlp", "mlp", "mog")
    assert model["encoder_options"]["hidden"] == 16
    assert model["decoder_options"]["hidden"] == 9  # the flag, over the file's 12
    assert model["prior_options"]["components"] == 3
    assert train["kl_schedule_options"]["steps"] == 40
    assert (train["epochs"], model["latent_dim"], train["accelerator"]) == (1, 3, "cpu")


def test_retraining_from_a_runs_config_toml_gives_identical_weights(tmp_path):
    config = write(tmp_path, EXPERIMENT)
    first = runner.invoke(app, train_args(tmp_path, "--config", str(config), "--name", "a"))
    assert first.exit_code == 0, first.output
    resolved = tmp_path / "runs" / "a" / "config.toml"
    again = runner.invoke(app, train_args(tmp_path, "--config", str(resolved), "--name", "b"))
    assert again.exit_code == 0, again.output
    a = load_file(tmp_path / "runs" / "a" / "model.safetensors")
    b = load_file(tmp_path / "runs" / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    # printing the config of a config-driven run gives the same file
    printed = runner.invoke(app, ["train", "--config", str(resolved), "--print-config"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == resolved.read_text()


def test_print_config_fills_every_default_round_trips_and_trains_nothing(tmp_path):
    config = write(tmp_path, EXPERIMENT)
    first = runner.invoke(app, train_args(tmp_path, "--config", str(config), "--print-config"))
    assert first.exit_code == 0, first.output
    assert not (tmp_path / "runs").exists()
    printed = tomllib.loads(first.stdout)
    assert printed["lr"] == 0.001 and printed["seed"] == 0  # defaults filled in
    assert printed["prior"]["spread"] == 1.0  # the zoo prior's own default
    assert "# plugin zoo: vaekit-zoo" in first.stdout
    again_file = write(tmp_path, first.stdout, "printed.toml")
    second = runner.invoke(app, ["train", "--config", str(again_file), "--print-config"])
    assert second.stdout == first.stdout


def test_print_config_without_a_file_prints_the_flags_resolved():
    result = runner.invoke(app, ["train", "--encoder", "resnet", "--epochs", "3", "--print-config"])
    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.stdout)
    assert printed["epochs"] == 3
    assert printed["encoder"]["name"] == printed["decoder"]["name"] == "resnet"
    assert "width" in printed["encoder"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("epoch = 3\n", "unknown key 'epoch'; known: [accelerator]"),
        ('epochs = "3"\n', "epochs must be an integer, got '3'"),
        ("epochs = \n", "is not valid TOML"),
        ('[encoder]\nname = "resnett"\n', "unknown encoder 'resnett'"),
        ('[encoder]\nname = "mlp"\nhiden = 3\n', "has no option 'hiden'; it accepts: hidden"),
        ("[encoder]\nhidden = 3\n", "[encoder] has options but no name"),
        ("encoder = 3\n", "'encoder' must be a table"),
        ("[prior]\nname = 3\n", "[prior] name must be a string"),
        ("lr = nan\n", "lr must be a finite number"),
    ],
)
def test_a_wrong_config_file_is_one_line_exit_2_and_nothing_written(tmp_path, text, expected):
    config = write(tmp_path, text)
    result = runner.invoke(app, train_args(tmp_path, "--config", str(config)))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(config) in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_config_with_resume_is_refused(tmp_path):
    config = write(tmp_path, EXPERIMENT)
    result = runner.invoke(app, train_args(tmp_path, "--config", str(config), "--resume"))
    assert result.exit_code == 2 and "leave out --config" in result.output


def test_a_flag_naming_another_component_drops_the_files_options():
    from_file = {"encoder": "resnet", "encoder_options": {"width": 8}, "epochs": 4}
    merged = merge_settings(from_file, {"encoder": "mlp", "epochs": 2})
    assert merged == {"encoder": "mlp", "epochs": 2}
    merged = merge_settings(from_file, {"encoder_options": {"blocks": 2}})
    assert merged["encoder_options"] == {"width": 8, "blocks": 2}


def test_written_values_read_back_exactly():
    for value in ['a "quoted" \\ path\tx', "ünï", 1e-7, 3, True, ["tensorboard"], 0.1]:
        assert tomllib.loads(f"v = {toml_value(value, 'v')}")["v"] == value
    with pytest.raises(UsageError, match="finite"):
        toml_value(float("inf"), "lr")


def test_config_toml_reads_back_to_the_same_settings():
    config = TrainConfig.build(encoder="conv", encoder_options={"width": 8}, patience=3, lr=3e-4)
    text = config_toml(config)
    rebuilt = TrainConfig.build(**settings_from_tables(tomllib.loads(text), "x.toml"))
    assert rebuilt == config
    assert config_toml(rebuilt) == text
