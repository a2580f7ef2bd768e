"""Small builders shared by tests (tiny models, tiny runs, throwaway plugins)."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vaekit.config import TrainConfig
from vaekit.train import TrainResult, train


def tiny_config(tmp_path: Path, **overrides: Any) -> TrainConfig:
    """A TrainConfig that trains an MLP VAE on the digits in about a second."""
    settings: dict[str, Any] = dict(
        encoder="mlp",
        encoder_options={"hidden": 32},
        decoder_options={"hidden": 32},
        latent_dim=4,
        epochs=2,
        batch_size=64,
        runs_dir=str(tmp_path / "runs"),
        name="tiny",
        accelerator="cpu",
        figures=False,  # drawing costs a second or two; tests of the figures ask for them
    )
    settings.update(overrides)
    return TrainConfig.build(**settings)


def train_tiny(tmp_path: Path, **overrides: Any) -> TrainResult:
    """Train :func:`tiny_config` and return the result."""
    return train(tiny_config(tmp_path, **overrides))


def write_fake_distribution(
    site: Path, dist: str, module: str, source: str, version: str = "1.0", ep_name: str = ""
) -> None:
    """Write an installed-looking distribution (module + dist-info with a ``vaekit``
    entry point) into ``site``; put ``site`` on sys.path to make importlib.metadata see it."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[vaekit]\n{ep_name or module} = {module}\n")


@contextlib.contextmanager
def registered(plugin: object, name: str) -> Iterator[None]:
    """Register a throwaway plugin for the duration of a ``with`` block."""
    from vaekit.plugins import get_plugin_host

    host = get_plugin_host()
    host.add_plugin(plugin, name)
    try:
        yield
    finally:
        host.remove_plugin(name)
