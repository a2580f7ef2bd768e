"""The VAE: composes encoder, posterior head, prior, decoder and likelihood.

Losses are summed over data (and latent) dimensions per sample and averaged over
the batch, so with beta = 1 the training loss is exactly the negative ELBO in nats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from vaekit.errors import UsageError
from vaekit.options import strict_dataclass

LOGVAR_RANGE = (-30.0, 20.0)  # keeps exp(logvar) finite; far outside any useful posterior


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model: component names, their options, shapes."""

    input_shape: tuple[int, int, int]
    latent_dim: int = 16
    model: str = "vae"
    encoder: str = "conv"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    decoder: str | None = None  # None: the encoder's family
    decoder_options: dict[str, Any] = field(default_factory=dict)
    likelihood: str = "gaussian"
    likelihood_options: dict[str, Any] = field(default_factory=dict)
    prior: str = "normal"
    prior_options: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 0

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)  # type: ignore[assignment]
        if self.decoder is None:
            self.decoder = self.encoder
        if self.latent_dim < 1:
            raise UsageError(f"latent size must be >= 1, got {self.latent_dim}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` reads it back)."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Strict inverse of ``to_dict``: unknown keys are an error."""
        return strict_dataclass(cls, data, "model config")


@dataclass
class Components:
    """The built parts a model kind composes."""

    encoder: nn.Module
    decoder: nn.Module
    likelihood: nn.Module
    prior: nn.Module


class ELBOTerms(NamedTuple):
    """Per-sample terms of one forward pass."""

    recon_nll: Tensor  # (B,) -log p(x|z), nats
    kl_per_dim: Tensor  # (B, D) KL(q(z|x) || p(z)) per latent dimension
    mu: Tensor  # (B, D)
    logvar: Tensor  # (B, D)
    params: Tensor  # (B, C*k, H, W) likelihood parameters

    @property
    def kl(self) -> Tensor:
        """(B,) total KL per sample."""
        return self.kl_per_dim.sum(1)

    @property
    def neg_elbo(self) -> Tensor:
        """(B,) -ELBO = recon NLL + KL (beta = 1)."""
        return self.recon_nll + self.kl


def one_hot_labels(y: Tensor | None, num_classes: int) -> Tensor | None:
    """Class ids (B,) -> one-hot float (B, K); an unlabelled row (-1) gets all zeros.
    ``None`` when the model is not class-conditional (``num_classes == 0``) or ``y`` is None."""
    if not num_classes or y is None:
        return None
    return torch.nn.functional.one_hot(y.clamp(min=0), num_classes).float() * (y >= 0)[:, None]


def build_components(config: ModelConfig) -> Components:
    """Build encoder, decoder, likelihood and prior from the registries."""
    from vaekit.plugins import create

    likelihood = create("likelihoods", config.likelihood, **config.likelihood_options)
    channels, height, width = config.input_shape
    k = int(getattr(likelihood, "params_per_channel", 1))
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


def build_model(config: ModelConfig) -> nn.Module:
    """Build the model kind ``config.model`` with freshly initialised weights."""
    from vaekit.plugins import get_plugin_host

    components = build_components(config)
    return get_plugin_host().get("models", config.model).factory(config, components)


class VAE(nn.Module):
    """q(z|x) = N(mu(x), diag exp(logvar(x))), p(z) the prior, p(x|z) the likelihood."""

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

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, C, H, W) in [0, 1] -> posterior (mu, logvar), each (B, D)."""
        h = self.encoder(x)  # (B, F)
        if y is not None:
            h = torch.cat([h, y], dim=1)
        # the posterior head runs in float32 even under bf16 autocast: latents are the product
        with torch.autocast(device_type=h.device.type, enabled=False):
            mu, logvar = self.head(h.float()).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(B, D) latents -> (B, C*k, H, W) likelihood parameters."""
        if y is not None:
            z = torch.cat([z, y], dim=1)
        return self.decoder(z).float()

    def decode_mean(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(B, D) latents -> (B, C, H, W) mean images in [0, 1]."""
        return self.likelihood.mean(self.decode(z, y))

    @staticmethod
    def reparametrise(mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): a differentiable posterior draw."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: Tensor, y: Tensor | None = None, sample: bool = True) -> ELBOTerms:
        """One pass: encode, draw z (or take the mean), decode, score."""
        mu, logvar = self.encode(x, y)
        z = self.reparametrise(mu, logvar) if sample else mu
        params = self.decode(z, y)
        recon_nll = -self.likelihood.log_prob(x.float(), params)
        kl_per_dim = self.prior.kl(mu, logvar)
        return ELBOTerms(recon_nll, kl_per_dim, mu, logvar, params)

    @staticmethod
    def loss(terms: ELBOTerms, beta: float | Tensor = 1.0, free_bits: float = 0.0) -> Tensor:
        """Batch-mean of recon NLL + beta * KL; with free bits, each latent dimension's
        batch-mean KL counts as at least ``free_bits`` nats (Kingma et al. 2016)."""
        kl = terms.kl_per_dim.mean(0)
        if free_bits > 0:
            kl = kl.clamp(min=free_bits)
        return terms.recon_nll.mean() + beta * kl.sum()

    @torch.no_grad()
    def iwae_bound(self, x: Tensor, k: int = 64, y: Tensor | None = None) -> Tensor:
        """(B,) importance-weighted lower bound on log p(x) with ``k`` samples (Burda et al.)."""
        mu, logvar = self.encode(x, y)
        log_w = []
        for _ in range(k):
            z = self.reparametrise(mu, logvar)
            log_q = (
                -0.5 * ((z - mu).square() / logvar.exp() + logvar + math.log(2 * math.pi))
            ).sum(1)
            log_px = self.likelihood.log_prob(x.float(), self.decode(z, y))
            log_w.append(log_px + self.prior.log_prob(z) - log_q)
        return torch.logsumexp(torch.stack(log_w), dim=0) - math.log(k)
