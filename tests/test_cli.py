"""The command line through Typer's CliRunner, and once as a real installed command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import write_fake_distribution
from vaekit.cli import app

runner = CliRunner()
TINY = [
    "--encoder",
    "mlp",
    "--encoder-opt",
    "hidden=16",
    "--decoder-opt",
    "hidden=16",
    "-z",
    "2",
    "--batch-size",
    "256",
    "--accelerator",
    "cpu",
]


def vaekit_command() -> str:
    """The installed console script (next to this interpreter, or on PATH)."""
    beside = Path(sys.executable).with_name("vaekit")
    found = str(beside) if beside.exists() else shutil.which("vaekit")
    assert found, "the vaekit console script is not installed"
    return found


def test_train_through_the_cli(tmp_path):
    result = runner.invoke(
        app, ["train", *TINY, "--epochs", "2", "--runs-dir", str(tmp_path), "--name", "cli"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["model"]["encoder_options"] == {"hidden": 16, "depth": 2}  # + the default
    assert config["model"]["latent_dim"] == 2


def test_resume_flag_extends_a_run(tmp_path):
    base = ["train", *TINY, "--runs-dir", str(tmp_path), "--name", "r"]
    assert runner.invoke(app, [*base, "--epochs", "1"]).exit_code == 0
    result = runner.invoke(app, [*base, "--epochs", "2", "--resume"])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]


def test_unknown_encoder_exits_2_with_a_suggestion(tmp_path):
    result = runner.invoke(app, ["train", "--encoder", "resnt", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "did you mean 'resnet'" in result.output
    assert not any(tmp_path.iterdir())


def test_misspelt_component_option_exits_2(tmp_path):
    result = runner.invoke(
        app, ["train", "--encoder", "conv", "--encoder-opt", "widht=8", "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "has no option 'widht'" in result.output and "width" in result.output


def test_bad_option_syntax_exits_2(tmp_path):
    result = runner.invoke(app, ["train", "--encoder-opt", "width", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--encoder-opt expects key=value" in result.output


def test_resume_without_a_run_fails_clearly(tmp_path):
    result = runner.invoke(app, ["train", "--resume", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "to resume; train one first (without --resume)" in result.output


def test_plugins_json_lists_plugins_and_components():
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    names = {p["name"]: p for p in listing["plugins"]}
    assert names["vaekit.builtin.networks"]["distribution"] == "vaekit"
    assert listing["components"]["encoders"]["resnet"] == "vaekit.builtin.networks"
    assert "warmup" in listing["components"]["kl_schedules"]


def test_plugins_table():
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0
    assert "kl_schedules" in result.output and "warmup" in result.output


def test_help_does_not_import_torch():
    code = (
        "import sys, vaekit.cli\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(vaekit.cli.app, ['--help'])\n"
        "heavy = [m for m in ('torch', 'h5py', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_skips_what_it_does_not_use_and_lists_plugin_commands(tmp_path):
    """``vaekit --help`` imports neither rich.markdown (markdown_it, pygments) nor
    rich.traceback, and, once the entry points are cached, not importlib.metadata."""
    code = (
        "import sys, vaekit.cli\n"
        "try:\n"
        "    vaekit.cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = ('rich.markdown', 'markdown_it', 'pygments', 'rich.traceback',\n"
        "          'importlib.metadata', 'torch')\n"
        "print('loaded:', *[m for m in loaded if m in sys.modules])\n"
    )
    env = dict(os.environ, VAEKIT_CACHE_DIR=str(tmp_path), COLUMNS="100")
    # -P: no script folder on sys.path, so the cache key is the installation's alone
    first, second = (
        subprocess.run(
            [sys.executable, "-P", "-c", code], capture_output=True, text=True, env=env, check=True
        )
        for _ in range(2)
    )
    assert list(tmp_path.glob("entry-points-*.json")), "the entry-point scan was not cached"
    for done in (first, second):
        assert " runs " in done.stdout  # vaekit-example's command is still listed
        assert "Plugins" in done.stdout and " train " in done.stdout
    assert second.stdout.splitlines()[-1] == "loaded:"


def test_help_formatter_stand_ins_load_the_real_classes():
    code = (
        "import sys, vaekit.cli\n"
        "vaekit.commands.help.import_help_formatter()\n"
        "from typer import rich_utils\n"
        "assert 'rich.markdown' not in sys.modules\n"
        "import rich.markdown, rich.traceback\n"
        "assert isinstance(rich_utils.Markdown('*x*'), rich.markdown.Markdown)\n"
        "assert rich_utils.Traceback.from_exception.__self__ is rich.traceback.Traceback\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_installed_command_runs_as_a_subprocess(tmp_path):
    command = vaekit_command()
    help_text = subprocess.run([command, "--help"], capture_output=True, text=True, check=True)
    assert "train" in help_text.stdout
    done = subprocess.run(
        [command, "train", *TINY, "--epochs", "1", "--runs-dir", "runs"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "latest" / "model.safetensors").is_file()
    bad = subprocess.run(
        [command, "train", "--encoder", "resnt"], capture_output=True, text=True, cwd=tmp_path
    )
    assert bad.returncode == 2 and "did you mean 'resnet'" in bad.stderr


@pytest.fixture
def outside_plugin(tmp_path):
    """A distribution outside the repo, written as docs/plugins.md describes."""
    site = tmp_path / "site"
    site.mkdir()
    write_fake_distribution(
        site,
        "vaekit-outside",
        "vaekit_outside",
        """
        import vaekit

        @vaekit.hookimpl
        def register_encoders(register):
            from torch import nn

            class TinyEncoder(nn.Module):
                def __init__(self, input_shape, features=8):
                    super().__init__()
                    c, h, w = input_shape
                    self.net = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, features))
                    self.out_features = features

                def forward(self, x):
                    return self.net(x)

            register("outside", TinyEncoder)
        """,
        version="0.0.7",
    )
    return site


def test_an_outside_package_plugs_in_through_the_entry_point(tmp_path, outside_plugin):
    env = dict(os.environ, PYTHONPATH=str(outside_plugin))
    command = vaekit_command()
    listing = subprocess.run(
        [command, "plugins", "--json"], capture_output=True, text=True, env=env, check=True
    )
    plugins = {p["name"]: p for p in json.loads(listing.stdout)["plugins"]}
    assert plugins["vaekit_outside"]["distribution"] == "vaekit-outside"
    assert plugins["vaekit_outside"]["version"] == "0.0.7"
    done = subprocess.run(
        [
            command,
            "train",
            "--encoder",
            "outside",
            "--decoder",
            "mlp",
            "--decoder-opt",
            "hidden=16",
            "-z",
            "2",
            "--epochs",
            "1",
            "--runs-dir",
            "runs",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "runs" / "latest" / "config.json").read_text())
    assert config["model"]["encoder"] == "outside"
    assert config["plugins"]["vaekit_outside"]["version"] == "0.0.7"


def test_broken_outside_plugin_is_reported_and_cli_still_works(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_fake_distribution(site, "vaekit-broken", "vaekit_broken", "import not_a_module\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run(
        [vaekit_command(), "plugins", "--json"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0
    assert "vaekit_broken" in done.stderr and "broken" in done.stderr
    plugins = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    assert plugins["vaekit_broken"]["status"] == "broken"


def test_train_help_shows_the_defaults():
    """Rich would read ``[default: 16]`` as markup and drop it: the help escapes it."""
    out = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    assert "Latent size [default: 16]" in out.output
    assert "[default: warmup]" in out.output
