"""A learned mixture-of-Gaussians prior, far from N(0, I), with no closed-form KL.

It has ``log_prob`` and ``sample`` only, so vaekit estimates KL(q || p) by Monte
Carlo (log q(z|x) - log p(z) at the drawn z).
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor, nn


class MixturePrior(nn.Module):
    """p(z) = sum_k w_k N(z; m_k, diag s_k^2), all learned. Component k starts with every
    mean coordinate at ``offset + k`` (so the prior sits far from the origin) and scale
    ``scale``."""

    def __init__(
        self,
        latent_dim: int,
        components: Annotated[int, "number of Gaussians"] = 4,
        offset: Annotated[float, "Gaussian k's mean starts at offset + k in every dimension"] = 5.0,
        scale: Annotated[float, "each Gaussian's first standard deviation"] = 0.7,
    ):
        super().__init__()
        if components < 1:
            from vaekit.errors import UsageError

            raise UsageError(f"mixture prior needs components >= 1, got {components}")
        start = offset + torch.arange(components, dtype=torch.float32)
        self.means = nn.Parameter(start[:, None].repeat(1, latent_dim))  # (K, D)
        self.log_scales = nn.Parameter(torch.full((components, latent_dim), math.log(scale)))
        self.logits = nn.Parameter(torch.zeros(components))

    def log_prob(self, z: Tensor) -> Tensor:
        """(B, D) -> (B,)."""
        diff = (z[:, None, :] - self.means) * torch.exp(-self.log_scales)  # (B, K, D)
        per_component = (-0.5 * diff.square() - self.log_scales - 0.5 * math.log(2 * math.pi)).sum(
            -1
        )
        return torch.logsumexp(per_component + torch.log_softmax(self.logits, 0), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws (n, D): a component by its weight, then a Gaussian draw from it."""
        weights = torch.softmax(self.logits.detach(), 0)
        k = torch.multinomial(weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, device=weights.device)
        return self.means.detach()[k] + torch.exp(self.log_scales.detach()[k]) * eps
