"""The VampPrior (Tomczak & Welling 2018): p(z) = 1/K sum_k q(z | u_k), a mixture of the
model's own posteriors at K learned pseudo-inputs u_k.

The prior needs the encoder, and a prior factory only gets ``latent_dim``; so the
``vamp`` *model kind* owns the pseudo-inputs and replaces its prior with a
:class:`VampPrior` that encodes them through the kind's ``posterior``. The
pseudo-inputs are a parameter of the prior module, which is the model's ``prior``
submodule: they are saved in ``model.safetensors`` (``prior.pseudo_logits``),
restored by ``open_run``, and move with the model to its device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import torch
from torch import Tensor, nn

from vaekit.model import VAE, Components
from vaekit.posterior import DiagonalGaussian
from vaekit_zoo.mog import gaussian_mixture_log_prob, gaussian_mixture_sample


class VampPrior(nn.Module):
    """p(z) = 1/K sum_k q(z | u_k), u_k = sigmoid(pseudo_logits_k) in [0, 1].

    ``encode`` is the owning model's ``posterior`` (a plain attribute, not a submodule,
    so the encoder's weights are saved once, under the model).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        components: int,
        encode: Callable[[Tensor], DiagonalGaussian],
        init_std: float = 0.01,
        seed: int = 0,
    ):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        # pseudo-inputs start near mid-grey, a little apart so their posteriors differ
        self.pseudo_logits = nn.Parameter(
            init_std * torch.randn(components, *input_shape, generator=generator)
        )
        self._encode = encode
        self._cached: tuple[Tensor, Tensor] | None = None

    @property
    def components(self) -> int:
        return self.pseudo_logits.shape[0]

    def pseudo_inputs(self) -> Tensor:
        """The K pseudo-inputs ``(K, C, H, W)`` in [0, 1]."""
        return torch.sigmoid(self.pseudo_logits)

    def mixture(self) -> tuple[Tensor, Tensor]:
        """The components' means and log-variances ``(K, D)``: q(z | u_k)."""
        if self._cached is not None:
            return self._cached
        q = self._encode(self.pseudo_inputs())
        return q.mean, q.logvar

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Encode the pseudo-inputs once and reuse them inside the block (evaluation with
        many ``log_prob`` calls, e.g. an IWAE bound with K = 1,000); no gradients."""
        with torch.no_grad():
            self._cached = self.mixture()
        try:
            yield
        finally:
            self._cached = None

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z): ``(B, D)`` -> ``(B,)``."""
        means, logvars = self.mixture()
        log_w = torch.full((self.components,), -math.log(self.components), device=z.device)
        return gaussian_mixture_log_prob(z, means, logvars, log_w)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """``n`` draws ``(n, D)``: a pseudo-input uniformly, then its posterior (standard
        deviation scaled by ``temperature``)."""
        means, logvars = self.mixture()
        weights = torch.full((self.components,), 1.0 / self.components, device=means.device)
        return gaussian_mixture_sample(n, means, logvars, weights, generator, temperature)


class VampVAE(VAE):
    """The ``vamp`` kind: the standard VAE objective (ELBO, Monte Carlo KL) with the
    VampPrior as p(z).

    Options: ``pseudo_inputs`` (K, default 500 as in the paper), ``init_std`` (spread of
    the pseudo-inputs' initial logits around mid-grey). The kind brings its own prior:
    ``--prior`` must stay ``normal`` (the default), which it replaces.
    """

    def __init__(
        self,
        config,
        components: Components,
        pseudo_inputs: Annotated[int, "number of pseudo-inputs K (the prior's components)"] = 500,
        init_std: Annotated[float, "spread of the pseudo-inputs' first logits (mid-grey)"] = 0.01,
    ):
        from vaekit.errors import UsageError

        if pseudo_inputs < 1:
            raise UsageError(f"vamp needs pseudo_inputs >= 1, got {pseudo_inputs}")
        if config.prior != "normal":
            raise UsageError(
                f"model kind 'vamp' brings its own prior (the VampPrior); leave out "
                f"--prior {config.prior}"
            )
        super().__init__(config, components)
        self.prior = VampPrior(
            tuple(config.input_shape), pseudo_inputs, self._encode_pseudo, init_std
        )

    def _encode_pseudo(self, u: Tensor) -> DiagonalGaussian:
        """q(z|u) for pseudo-inputs (no class: the VampPrior is unconditional)."""
        return self.posterior(u)
