"""The VAE: composes encoder, posterior head, prior, decoder and likelihood.

Losses are summed over data (and latent) dimensions per sample and averaged over
the batch, so with beta = 1 the training loss is exactly the negative ELBO in nats.

The KL term comes from the prior: its closed form when it has ``kl(posterior)``,
otherwise the Monte Carlo estimate log q(z|x) - log p(z) at the z drawn for the
reconstruction (:func:`kl_divergence`). Free bits (Kingma et al. 2016) floor the
batch-mean KL at ``free_bits`` nats per latent dimension: per dimension where the
KL splits by dimension, on the total (``free_bits * D``) where it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import torch
from torch import Tensor, nn

from vaekit.conditional import ClassConditionalPrior
from vaekit.config import ModelConfig
from vaekit.errors import UsageError
from vaekit.objective import ELBOTerms, Objective
from vaekit.plugins import create, factory
from vaekit.posterior import DiagonalGaussian
from vaekit.prior_ops import (  # noqa: F401 - importable from vaekit.model as before
    kl_divergence,
    prior_log_prob,
    sample_prior,
)

LOGVAR_RANGE = (-30.0, 20.0)  # keeps exp(logvar) finite; far outside any useful posterior


@dataclass
class Components:
    """The built parts a model kind composes."""

    encoder: nn.Module
    decoder: nn.Module
    likelihood: nn.Module
    prior: nn.Module


MAIN_GROUP = "model"


def parameter_groups(model: Any) -> dict[str, list[nn.Parameter]]:
    """The kind's trainable parameters by optimiser: ``{"model": [...]}`` unless the kind
    has ``parameter_groups()`` (extra networks with their own optimiser and loss)."""
    from vaekit.errors import ContractError

    declared = getattr(model, "parameter_groups", None)
    if declared is None:
        return {MAIN_GROUP: [p for p in model.parameters() if p.requires_grad]}
    groups = {name: [p for p in params if p.requires_grad] for name, params in declared().items()}
    if MAIN_GROUP not in groups:
        raise ContractError(f"parameter_groups() must include '{MAIN_GROUP}'; got {sorted(groups)}")
    seen: set[int] = set()
    for name, params in groups.items():
        ids = {id(p) for p in params}
        if ids & seen:
            raise ContractError(f"parameter group '{name}' shares parameters with another group")
        seen |= ids
    return groups


def elbo_loss(
    terms: ELBOTerms, beta: float | Tensor = 1.0, free_bits: float = 0.0, latent_dim: int = 1
) -> Tensor:
    """Batch-mean of recon NLL + beta * KL. With free bits, each KL column's batch mean
    counts as at least ``free_bits`` nats per latent dimension it covers."""
    kl = terms.kl_terms.mean(0)  # (K,)
    if free_bits > 0:
        kl = kl.clamp(min=free_bits * latent_dim / kl.numel())
    return terms.recon_nll.mean() + beta * kl.sum()


def one_hot_labels(y: Tensor | None, num_classes: int) -> Tensor | None:
    """Class ids (B,) -> one-hot float (B, K); an unlabelled row (-1) gets all zeros.
    ``None`` when the model is not class-conditional (``num_classes == 0``) or ``y`` is None."""
    if not num_classes or y is None:
        return None
    return torch.nn.functional.one_hot(y.clamp(min=0), num_classes).float() * (y >= 0)[:, None]


def build_components(config: ModelConfig) -> Components:
    """Build encoder, decoder, likelihood and prior from the registries (each checked
    against its protocol in :mod:`vaekit.contract`)."""
    if config.input_shape is None:
        raise UsageError("the model config has no input shape; it comes from the data")
    likelihood = create("likelihoods", config.likelihood, **config.likelihood_options)
    channels, height, width = config.input_shape
    k = int(likelihood.params_per_channel)
    extra = config.num_classes  # class-conditional models feed one-hot labels to both nets
    encoder = create(
        "encoders", config.encoder, (channels, height, width), **config.encoder_options
    )
    decoder = create(
        "decoders",
        config.decoder,
        config.latent_dim + extra,
        (channels * k, height, width),
        **config.decoder_options,
    )
    prior = create("priors", config.prior, config.latent_dim, **config.prior_options)
    return Components(encoder, decoder, likelihood, prior)


def needs_labels(kind: str) -> bool:
    """Whether model kind ``kind`` conditions on class labels (its factory declares it)."""
    return bool(getattr(factory("models", kind), "needs_labels", False))


def build_model(config: ModelConfig) -> nn.Module:
    """Build the model kind ``config.kind`` with freshly initialised weights."""
    components = build_components(config)
    return create("models", config.kind, config, components, **config.kind_options)


def mean_image(model: Any, z: Tensor, y: Tensor | None = None) -> Tensor:
    """(B, D) latents -> (B, C, H, W) mean images in [0, 1]."""
    return model.likelihood.mean(model.decode(z, y))


class VAE(nn.Module):
    """q(z|x) = N(mu(x), diag exp(logvar(x))), p(z) the prior, p(x|z) the likelihood.

    The ``vae`` model kind, and the base class for kinds that change the objective:
    override :meth:`forward` (the training objective) and keep the rest.
    """

    needs_labels: ClassVar[bool] = False

    def __init__(self, config: ModelConfig, components: Components):
        super().__init__()
        self.config = config
        self.encoder = components.encoder
        self.decoder = components.decoder
        self.likelihood = components.likelihood
        self.prior = components.prior
        features = int(self.encoder.out_features)
        self.head = nn.Linear(features + config.num_classes, 2 * config.latent_dim)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def posterior(self, x: Tensor, y: Tensor | None = None) -> DiagonalGaussian:
        """(B, C, H, W) in [0, 1] -> q(z|x), a diagonal Gaussian over (B, D)."""
        h = self.encoder(x)  # (B, F)
        if y is not None:
            h = torch.cat([h, y], dim=1)
        # the posterior head runs in float32 even under bf16 autocast: latents are the product
        with torch.autocast(device_type=h.device.type, enabled=False):
            mu, logvar = self.head(h.float()).chunk(2, dim=1)
        return DiagonalGaussian(mu, logvar.clamp(*LOGVAR_RANGE))

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(B, D) latents -> (B, C*k, H, W) likelihood parameters."""
        if y is not None:
            z = torch.cat([z, y], dim=1)
        return self.decoder(z).float()

    def elbo(self, x: Tensor, y: Tensor | None = None, sample: bool = True) -> ELBOTerms:
        """One pass: q(z|x), a draw z (or its mean), p(x|z), and the KL to the prior."""
        q = self.posterior(x, y)
        z = q.rsample() if sample else q.mean
        params = self.decode(z, y)
        recon_nll = -self.likelihood.log_prob(x.float(), params)
        return ELBOTerms(recon_nll, kl_divergence(self.prior, q, z, y), q, z, params)

    def forward(
        self, x: Tensor, y: Tensor | None = None, beta: float | Tensor = 1.0, free_bits: float = 0.0
    ) -> Objective:
        """The training objective: batch-mean recon NLL + beta * KL (with free bits)."""
        terms = self.elbo(x, y)
        loss = elbo_loss(terms, beta, free_bits, self.latent_dim)
        return Objective(loss, terms.recon_nll, terms.kl)


class CVAE(VAE):
    """The class-conditional VAE (Kingma et al. 2014, M2/CVAE): q(z|x, y), p(x|z, y) and,
    by default, a learned class-conditional prior p(z|y): the configured prior p0 moved by
    m_y and scaled by s_y per class (:class:`vaekit.conditional.ClassConditionalPrior`: it is what
    makes ``sample --label`` give that class when z, not y, carries the class).
    ``class_prior=False`` keeps p(z) = p0 for every class (runs of vaekit < 0.3).
    y is one-hot, appended to the encoder's features and to z; ``config.num_classes``
    comes from the training data's class names; unlabelled images get y = 0."""

    needs_labels: ClassVar[bool] = True

    def __init__(
        self,
        config: ModelConfig,
        components: Components,
        class_prior: Annotated[
            bool, "learn p(z|y), the prior moved and scaled per class (false: p(z) for all)"
        ] = True,
    ):
        if config.num_classes < 1:
            raise UsageError("model 'cvae' needs data with class labels (e.g. the digits)")
        super().__init__(config, components)
        if class_prior:
            self.prior = ClassConditionalPrior(
                components.prior, config.num_classes, config.latent_dim
            )


@torch.no_grad()
def iwae_bound(model: Any, x: Tensor, k: int = 64, y: Tensor | None = None) -> Tensor:
    """(B,) importance-weighted lower bound on log p(x) with ``k`` samples (Burda et al.),
    from the kind's posterior, prior and likelihood."""
    q = model.posterior(x, y)
    log_w = []
    for _ in range(k):
        z = q.rsample()
        log_px = model.likelihood.log_prob(x.float(), model.decode(z, y))
        log_w.append(log_px + prior_log_prob(model.prior, z, y) - q.log_prob(z))
    return torch.logsumexp(torch.stack(log_w), dim=0) - math.log(k)
