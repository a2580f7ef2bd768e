"""Built-in plugin: the standard-normal prior N(0, I)."""

from __future__ import annotations

import functools
import math
from typing import Any

from vaekit import hookimpl


def _build():
    import torch
    from torch import Tensor, nn

    from vaekit.posterior import DiagonalGaussian

    class NormalPrior(nn.Module):
        """p(z) = N(0, I), with the closed-form KL to a diagonal Gaussian."""

        def __init__(self, latent_dim: int):
            super().__init__()
            self.latent_dim = latent_dim
            self.register_buffer("_anchor", torch.zeros(()), persistent=False)

        def log_prob(self, z: Tensor) -> Tensor:
            return (-0.5 * z.square() - 0.5 * math.log(2 * math.pi)).sum(-1)

        def sample(
            self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
        ) -> Tensor:
            """``n`` draws; ``temperature`` scales the standard deviation."""
            device = self._anchor.device
            return temperature * torch.randn(n, self.latent_dim, generator=generator, device=device)

        def kl(self, posterior: DiagonalGaussian) -> Tensor:
            # KL(N(mu, s^2) || N(0, 1)) = 1/2 (mu^2 + s^2 - 1 - ln s^2), per dimension
            mu, logvar = posterior.mean, posterior.logvar
            return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)

    return NormalPrior


@functools.cache
def _built() -> type:
    return _build()


def __getattr__(name: str) -> Any:
    # the class needs torch: built on first access (the import path registered below)
    if name == "NormalPrior":
        return _built()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_priors(register):
    """Register the built-in prior, by import path (torch loads when it is built)."""
    register("normal", f"{__name__}:NormalPrior")
