"""A logistic likelihood with a learned scale per pixel (two decoder outputs per channel)."""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LogisticLikelihood(nn.Module):
    """x ~ Logistic(mu, s) per pixel, with mu and log s from the decoder."""

    params_per_channel = 2  # the decoder gives mu and log s for every data channel

    def __init__(self, min_log_scale: Annotated[float, "lower bound of log s per pixel"] = -5.0):
        super().__init__()
        self.min_log_scale = min_log_scale

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_s = params.chunk(2, dim=1)
        return mu, log_s.clamp(min=self.min_log_scale)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x|z) in nats, summed over pixels: -u - log s - 2 softplus(-u), u = (x-mu)/s."""
        mu, log_s = self._split(params)
        u = (x - mu) * torch.exp(-log_s)
        return (-u - log_s - 2 * F.softplus(-u)).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        return self._split(params)[0].clamp(0.0, 1.0)

    def sample(self, params: Tensor) -> Tensor:
        mu, log_s = self._split(params)
        u = torch.rand_like(mu).clamp(1e-6, 1 - 1e-6)
        return (mu + torch.exp(log_s) * (torch.log(u) - torch.log1p(-u))).clamp(0.0, 1.0)
