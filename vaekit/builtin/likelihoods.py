"""Built-in plugin: ``gaussian``, ``bernoulli`` and ``laplace`` likelihoods.

Every ``log_prob`` is log p(x | z) in nats, summed over all data dimensions and
including every normalising constant, so numbers compare across runs and
libraries. Data ``x`` are floats in [0, 1].
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any

from vaekit import hookimpl


def _build():
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn

    class GaussianLikelihood(nn.Module):
        """N(x; mu, sigma^2) per pixel; sigma fixed, or one learned scalar (``learn_sigma``)."""

        params_per_channel = 1

        def __init__(
            self,
            sigma: Annotated[float, "standard deviation of each pixel ([0, 1] pixel scale)"] = 0.1,
            learn_sigma: Annotated[bool, "learn sigma (one scalar) instead of fixing it"] = False,
        ):
            super().__init__()
            if sigma <= 0:
                raise ValueError(f"gaussian sigma must be > 0, got {sigma}")
            log_sigma = torch.tensor(math.log(sigma))
            if learn_sigma:
                self.log_sigma = nn.Parameter(log_sigma)
            else:
                self.register_buffer("log_sigma", log_sigma)

        def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
            log_sigma = self.log_sigma.clamp(min=-7.0)
            z = (x - params) * torch.exp(-log_sigma)
            per_dim = -0.5 * z.square() - log_sigma - 0.5 * math.log(2 * math.pi)
            return per_dim.flatten(1).sum(1)

        def mean(self, params: Tensor) -> Tensor:
            return params.clamp(0.0, 1.0)

        def sample(self, params: Tensor) -> Tensor:
            noise = torch.randn_like(params) * torch.exp(self.log_sigma)
            return (params + noise).clamp(0.0, 1.0)

    class BernoulliLikelihood(nn.Module):
        """Bernoulli(x; sigmoid(logits)) per pixel (x in [0, 1] as soft targets)."""

        params_per_channel = 1
        support = "binary"  # a distribution over {0, 1}: bits/dim are exact on binary images

        def __init__(self) -> None:  # no options (nn.Module's own would take any)
            super().__init__()

        def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
            nll = F.binary_cross_entropy_with_logits(params, x, reduction="none")
            return -nll.flatten(1).sum(1)

        def mean(self, params: Tensor) -> Tensor:
            return torch.sigmoid(params)

        def sample(self, params: Tensor) -> Tensor:
            return torch.bernoulli(torch.sigmoid(params))

    class LaplaceLikelihood(nn.Module):
        """Laplace(x; mu, b) per pixel; scale b fixed, or one learned scalar (``learn_scale``)."""

        params_per_channel = 1

        def __init__(
            self,
            scale: Annotated[float, "scale b of each pixel ([0, 1] pixel scale)"] = 0.1,
            learn_scale: Annotated[bool, "learn b (one scalar) instead of fixing it"] = False,
        ):
            super().__init__()
            if scale <= 0:
                raise ValueError(f"laplace scale must be > 0, got {scale}")
            log_scale = torch.tensor(math.log(scale))
            if learn_scale:
                self.log_scale = nn.Parameter(log_scale)
            else:
                self.register_buffer("log_scale", log_scale)

        def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
            log_b = self.log_scale.clamp(min=-7.0)
            per_dim = -(x - params).abs() * torch.exp(-log_b) - log_b - math.log(2.0)
            return per_dim.flatten(1).sum(1)

        def mean(self, params: Tensor) -> Tensor:
            return params.clamp(0.0, 1.0)

        def sample(self, params: Tensor) -> Tensor:
            dist = torch.distributions.Laplace(params, torch.exp(self.log_scale))
            return dist.sample().clamp(0.0, 1.0)

    return GaussianLikelihood, BernoulliLikelihood, LaplaceLikelihood


_NAMES = ("GaussianLikelihood", "BernoulliLikelihood", "LaplaceLikelihood")


def __getattr__(name: str) -> Any:
    # the classes need torch: built on first access (the import paths registered below)
    if name in _NAMES:
        return dict(zip(_NAMES, _built(), strict=True))[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _built() -> tuple[type, type, type]:
    return _build()


@hookimpl
def register_likelihoods(register):
    """Register the built-in likelihoods, by import path (torch loads when one is built)."""
    register("gaussian", f"{__name__}:GaussianLikelihood")
    register("bernoulli", f"{__name__}:BernoulliLikelihood")
    register("laplace", f"{__name__}:LaplaceLikelihood")
