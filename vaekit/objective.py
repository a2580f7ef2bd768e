"""What one ELBO evaluation gives (:class:`ELBOTerms`) and what a model kind's
``forward`` returns (:class:`Objective`): the data types of the model-kind contract."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from vaekit.posterior import DiagonalGaussian


class ELBOTerms(NamedTuple):
    """Per-sample terms of one ELBO evaluation."""

    recon_nll: Tensor  # (B,) -log p(x|z), nats
    kl_terms: Tensor  # (B, D) per latent dimension, or (B, 1) when the KL does not split
    posterior: DiagonalGaussian  # q(z|x)
    z: Tensor  # (B, D) the latent the reconstruction used
    params: Tensor  # (B, C*k, H, W) likelihood parameters

    @property
    def kl(self) -> Tensor:
        """(B,) total KL per sample."""
        return self.kl_terms.sum(1)

    @property
    def neg_elbo(self) -> Tensor:
        """(B,) -ELBO = recon NLL + KL (beta = 1)."""
        return self.recon_nll + self.kl


class Objective(NamedTuple):
    """What a model kind's ``forward`` returns: the loss to minimise and what to log.

    A kind with extra networks trained by their own losses (a discriminator) declares
    them with ``parameter_groups()`` and returns one loss per extra group in ``extra``.
    """

    loss: Tensor  # scalar, minimised over the "model" parameter group
    recon_nll: Tensor  # (B,) for the progress display and metrics
    kl: Tensor  # (B,)
    extra: dict[str, Tensor] | None = None  # group name -> scalar loss for that group
