"""A model kind with another objective: the importance-weighted bound (IWAE, Burda et al.)."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor

from vaekit.model import VAE, Objective, kl_divergence


class IWAE(VAE):
    """Trains on -log (1/k sum_i p(x, z_i) / q(z_i|x)) with k posterior draws; k = 1 is
    the ELBO. Everything else (encode, sample, evaluate) is the VAE's."""

    def __init__(
        self, config, components, k: Annotated[int, "posterior draws per image (1: the ELBO)"] = 5
    ):
        super().__init__(config, components)
        if k < 1:
            from vaekit.errors import UsageError

            raise UsageError(f"iwae needs k >= 1, got {k}")
        self.k = k

    def forward(
        self, x: Tensor, y: Tensor | None = None, beta: float = 1.0, free_bits: float = 0.0
    ) -> Objective:
        q = self.posterior(x, y)
        z = q.rsample(self.k)  # (k, B, D)
        flat = z.reshape(-1, z.shape[-1])
        repeat = x.repeat(self.k, 1, 1, 1)
        y_rep = None if y is None else y.repeat(self.k, 1)
        log_px = self.likelihood.log_prob(repeat.float(), self.decode(flat, y_rep))
        log_px = log_px.view(self.k, -1)
        log_pz = self.prior.log_prob(flat).view(self.k, -1)
        log_w = log_px + beta * (log_pz - q.log_prob(z))
        bound = torch.logsumexp(log_w, 0) - math.log(self.k)  # (B,)
        kl = kl_divergence(self.prior, q, z[0]).sum(1).detach()
        return Objective(-bound.mean(), -log_px[0].detach(), kl)
