"""A learned mixture-of-Gaussians prior p(z) = sum_k w_k N(z; m_k, diag s_k^2).

Means, scales and weights are parameters trained with the model. There is no
closed-form KL to a Gaussian posterior, so vaekit uses its Monte Carlo estimate.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


def gaussian_mixture_log_prob(z: Tensor, means: Tensor, logvars: Tensor, log_w: Tensor) -> Tensor:
    """log sum_k w_k N(z; m_k, diag exp(logvar_k)): z ``(B, D)``, means/logvars ``(K, D)``,
    log-weights ``(K,)`` -> ``(B,)``. Shared by the mixture prior and the VampPrior."""
    precision = torch.exp(-logvars)  # (K, D)
    # sum_d (z - m)^2 / v = z^2 . (1/v) - 2 z . (m/v) + sum m^2/v: matrix products, no (B, K, D)
    mahalanobis = (
        z.square() @ precision.T
        - 2 * z @ (means * precision).T
        + (means.square() * precision).sum(1)
    )
    per_k = -0.5 * (mahalanobis + (logvars + LOG_2PI).sum(1))  # (B, K)
    return torch.logsumexp(per_k + log_w, dim=1)


def gaussian_mixture_sample(
    n: int,
    means: Tensor,
    logvars: Tensor,
    weights: Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """``n`` draws ``(n, D)``: a component by its weight, then its Gaussian with the standard
    deviation scaled by ``temperature``."""
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    eps = torch.randn(n, means.shape[1], generator=generator, device=means.device)
    return means[k] + temperature * torch.exp(0.5 * logvars[k]) * eps


class MixtureOfGaussians(nn.Module):
    """p(z) = sum_k w_k N(z; m_k, diag s_k^2) with ``components`` learned components.

    Means start at ``spread`` times a seeded standard-normal draw (so components differ),
    scales at ``scale``, weights uniform. ``learn_weights=false`` keeps them uniform.
    """

    def __init__(
        self,
        latent_dim: int,
        components: Annotated[int, "number of Gaussians K"] = 10,
        spread: Annotated[float, "the means start at spread x a standard-normal draw"] = 1.0,
        scale: Annotated[float, "each Gaussian's first standard deviation"] = 1.0,
        learn_weights: Annotated[bool, "learn the weights (false: uniform)"] = True,
        seed: Annotated[int, "seed of the means' first draw"] = 0,
    ):
        super().__init__()
        from vaekit.errors import UsageError

        if components < 1:
            raise UsageError(f"mog prior needs components >= 1, got {components}")
        if scale <= 0 or spread < 0:
            raise UsageError(f"mog prior needs scale > 0 and spread >= 0, got {scale}, {spread}")
        generator = torch.Generator().manual_seed(seed)
        self.latent_dim = latent_dim
        self.means = nn.Parameter(spread * torch.randn(components, latent_dim, generator=generator))
        self.logvars = nn.Parameter(torch.full((components, latent_dim), 2 * math.log(scale)))
        logits = torch.zeros(components)
        if learn_weights:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z): ``(B, D)`` -> ``(B,)``."""
        return gaussian_mixture_log_prob(
            z, self.means, self.logvars, torch.log_softmax(self.logits, 0)
        )

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """``n`` draws ``(n, D)`` on the prior's device; ``temperature`` scales each
        component's standard deviation."""
        weights = torch.softmax(self.logits, 0)
        return gaussian_mixture_sample(n, self.means, self.logvars, weights, generator, temperature)
