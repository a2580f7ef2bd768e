"""Small builders shared by tests (tiny models, tiny runs, throwaway plugins)."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

import vaekit
from vaekit.config import TrainConfig
from vaekit.model import VAE, Objective, elbo_loss
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


class CriticKind:
    """A kind with an extra network, a critic of the decoder's output, trained by its own
    loss and optimiser.

    ``through=True``: the VAE's loss runs through the critic (as an adversarial generator
    term does) but moves only the VAE; the critic's own loss, on the detached output,
    moves only the critic. ``through=False``: the VAE's loss is the plain ELBO and the
    critic's loss (x100) is taken on the live output, so only the core's per-group backward
    keeps it out of the VAE.
    """

    def __init__(self, through: bool = True):
        self.through = through

    @vaekit.hookimpl
    def register_models(self, register):
        through = self.through

        class WithCritic(VAE):
            def __init__(self, config, components):
                super().__init__(config, components)
                c, h, w = config.input_shape
                with torch.random.fork_rng():  # the VAE's own random stream stays as it was
                    self.critic = torch.nn.Linear(c * h * w, 1)

            def parameter_groups(self):
                critic = {id(p) for p in self.critic.parameters()}
                main = [p for p in self.parameters() if id(p) not in critic]
                return {"model": main, "critic": list(self.critic.parameters())}

            def forward(self, x, y=None, beta=1.0, free_bits=0.0):
                terms = self.elbo(x, y)
                flat = terms.params.flatten(1)
                loss = elbo_loss(terms, beta, free_bits, self.latent_dim)
                if through:
                    loss = loss + 0.1 * self.critic(flat).mean()
                    critic_loss = (self.critic(flat.detach()) - 3.0).square().mean()
                else:
                    critic_loss = 100 * (self.critic(flat) - 3.0).square().mean()
                return Objective(loss, terms.recon_nll, terms.kl, {"critic": critic_loss})

        register("with-critic", WithCritic)
