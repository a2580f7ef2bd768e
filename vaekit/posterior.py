"""The approximate posterior q(z|x): a diagonal Gaussian as an object.

Every part of vaekit that draws from, scores or summarises q(z|x) -- the model's
ELBO, encode, generate, evaluation, a prior's KL -- goes through this one class,
so the reparametrisation is written once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian:
    """N(mean, diag(exp(logvar))) over the last dimension; a batch of ``(B, D)`` posteriors."""

    def __init__(self, mean: Tensor, logvar: Tensor) -> None:
        self.mean = mean  # (B, D)
        self.logvar = logvar  # (B, D)

    @property
    def stddev(self) -> Tensor:
        """(B, D) standard deviations."""
        return torch.exp(0.5 * self.logvar)

    @property
    def variance(self) -> Tensor:
        """(B, D) variances."""
        return torch.exp(self.logvar)

    @property
    def shape(self) -> torch.Size:
        """``(B, D)``."""
        return self.mean.shape

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """A differentiable draw z = mean + stddev * eps, eps ~ N(0, I): ``(B, D)``, or
        ``(n, B, D)`` for ``n`` draws (importance sampling)."""
        mean = self.mean if n is None else self.mean.expand(n, *self.mean.shape)
        if generator is None:  # randn_like keeps shapes symbolic under torch.compile
            eps = torch.randn_like(mean)
        else:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.reparametrise(eps)

    def reparametrise(self, eps: Tensor) -> Tensor:
        """z = mean + stddev * eps for standard normal ``eps`` ``(..., B, D)``: draws
        whose noise the caller made (as evaluation does, one draw at a time)."""
        return self.mean + self.stddev * eps

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) summed over the latent dimensions: ``(..., B)`` for z ``(..., B, D)``."""
        return (-0.5 * ((z - self.mean).square() / self.variance + self.logvar + LOG_2PI)).sum(-1)

    def __repr__(self) -> str:
        return f"DiagonalGaussian(shape={tuple(self.mean.shape)})"
