"""Using any prior through its contract: log p(z), KL(q || p) (closed form or Monte
Carlo) and draws, with a class-conditional prior given its one-hot ``y``."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

from vaekit.errors import UsageError
from vaekit.posterior import DiagonalGaussian


def _condition(prior: Any, y: Tensor | None) -> dict[str, Tensor]:
    """``{"y": y}`` for a prior that declares ``conditional = True`` and a given ``y``."""
    return {"y": y} if y is not None and getattr(prior, "conditional", False) else {}


def kl_divergence(
    prior: Any, posterior: DiagonalGaussian, z: Tensor, y: Tensor | None = None
) -> Tensor:
    """KL(q || p): the prior's closed form when it has ``kl`` and it gives one (``(B, D)``
    or ``(B, 1)``), else the one-sample Monte Carlo estimate log q(z|x) - log p(z) at
    ``z``, ``(B, 1)``. A conditional prior gets the one-hot ``y``."""
    condition = _condition(prior, y)
    closed_form = getattr(prior, "kl", None)
    if closed_form is not None:
        kl = closed_form(posterior, **condition)
        if kl is not None:
            return kl if kl.dim() == 2 else kl.reshape(len(kl), -1)
    return (posterior.log_prob(z) - prior.log_prob(z, **condition))[:, None]


def prior_log_prob(prior: Any, z: Tensor, y: Tensor | None = None) -> Tensor:
    """log p(z) ``(B,)``, or log p(z|y) for a conditional prior given ``y``."""
    return prior.log_prob(z, **_condition(prior, y))


def sample_prior(
    prior: Any,
    n: int,
    generator: torch.Generator | None = None,
    y: Tensor | None = None,
    temperature: float = 1.0,
    name: str | None = None,
) -> Tensor:
    """``n`` draws ``(n, D)`` through ``prior.sample``, the only way vaekit draws from a
    prior: ``y`` (one-hot ``(n, K)``) goes to a conditional prior, and ``temperature``
    (when not 1) to a prior whose ``sample`` accepts it; any other is a UsageError naming
    the prior (``name``, else its class)."""
    options: dict[str, Any] = _condition(prior, y)
    if temperature != 1.0:
        if "temperature" not in inspect.signature(prior.sample).parameters:
            raise UsageError(
                f"prior '{name or type(prior).__name__}' does not support --temperature; "
                "leave it at 1"
            )
        options["temperature"] = temperature
    return prior.sample(n, generator=generator, **options)
