"""The ``adversarial`` model kind: a VAE whose decoded images must also fool a patch
discriminator trained alongside it -- the standard answer to blurry VAE samples.

Recipe (after arXiv 2309.13160 for faces, and the VAE-GAN/VQGAN family): a small
PatchGAN discriminator scores overlapping patches of real images, reconstructions and
decoded prior draws; it is trained with the hinge loss, and the VAE minimises
-ELBO + weight * D * (-mean patch score of its images), D the number of data
dimensions, so ``weight`` reads as nats per dimension. The adversarial term is off for
the first ``start`` steps (the VAE first learns to reconstruct); the discriminator
trains from step 0.

The discriminator has its own parameter group, so vaekit gives it its own Adam
optimiser, checkpoints and resumes it, and never lets one loss move the other's
parameters (``parameter_groups`` + ``Objective.extra``). The step counter is a buffer,
saved in the checkpoint, so a resumed run switches the term on at the same step.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.model import VAE, Components, Objective, elbo_loss


class PatchDiscriminator(nn.Module):
    """Stride-2 4x4 convolutions (LeakyReLU 0.2) then a 3x3 convolution to one logit per
    patch: ``(B, C, H, W)`` -> ``(B, 1, H / 2^L, W / 2^L)``. ``layers`` is capped so the
    map keeps at least one patch; each patch sees about 2^(L+2) pixels."""

    def __init__(self, input_shape: tuple[int, int, int], width: int = 32, layers: int = 3):
        super().__init__()
        channels, height, width_px = input_shape
        layers = max(0, min(layers, int(math.log2(max(min(height, width_px), 1)))))
        blocks: list[nn.Module] = []
        c_in = channels
        for i in range(layers):
            c_out = width * 2**i
            blocks += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        blocks.append(nn.Conv2d(c_in, 1, 3, padding=1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(2 * x - 1)  # images in [0, 1] -> [-1, 1]


class AdversarialVAE(VAE):
    """The ``adversarial`` kind. Options: ``weight`` (adversarial weight in nats per data
    dimension, default 0.1), ``start`` (steps before the term is on, default 500),
    ``width`` and ``layers`` (the discriminator), ``prior_samples`` (also show the
    discriminator decoded prior draws, default true)."""

    def __init__(
        self,
        config,
        components: Components,
        weight: Annotated[float, "weight of the adversarial term, nats per data dimension"] = 0.1,
        start: Annotated[int, "optimiser steps before the adversarial term is on"] = 500,
        width: Annotated[int, "channels of the discriminator's first layer (doubled each)"] = 32,
        layers: Annotated[int, "stride-2 layers of the discriminator (capped by image size)"] = 3,
        prior_samples: Annotated[bool, "also show the discriminator decoded prior draws"] = True,
    ):
        from vaekit.errors import UsageError

        if weight < 0 or start < 0:
            raise UsageError(f"adversarial needs weight >= 0 and start >= 0, got {weight}, {start}")
        super().__init__(config, components)
        self.weight, self.start, self.prior_samples = weight, start, prior_samples
        self.discriminator = PatchDiscriminator(tuple(config.input_shape), width, layers)
        self.register_buffer("adv_step", torch.zeros((), dtype=torch.long))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The VAE (encoder, decoder, head, prior, likelihood) and the discriminator."""
        own = {id(p) for p in self.discriminator.parameters()}
        model = [p for p in self.parameters() if id(p) not in own]
        return {"model": model, "discriminator": list(self.discriminator.parameters())}

    def fakes(self, params: Tensor, y: Tensor | None) -> Tensor:
        """The images the discriminator judges: mean reconstructions, and the means of as
        many decoded prior draws when ``prior_samples``."""
        images = [self.likelihood.mean(params)]
        if self.prior_samples:
            z = self.prior.sample(len(params))
            images.append(self.likelihood.mean(self.decode(z, y)))
        return torch.cat(images)

    def forward(
        self, x: Tensor, y: Tensor | None = None, beta: float | Tensor = 1.0, free_bits: float = 0.0
    ) -> Objective:
        terms = self.elbo(x, y)
        vae_loss = elbo_loss(terms, beta, free_bits, self.latent_dim)
        fake = self.fakes(terms.params, y)
        real = x.float()
        # the discriminator's hinge loss, on images cut from the VAE's graph
        d_loss = F.relu(1 - self.discriminator(real)).mean()
        d_loss = d_loss + F.relu(1 + self.discriminator(fake.detach())).mean()
        on = self.training and int(self.adv_step) >= self.start
        if self.training:
            self.adv_step += 1
        loss = vae_loss
        if on and self.weight > 0:
            dims = real[0].numel()
            loss = loss - self.weight * dims * self.discriminator(fake).mean()
        return Objective(loss, terms.recon_nll, terms.kl, extra={"discriminator": d_loss})
