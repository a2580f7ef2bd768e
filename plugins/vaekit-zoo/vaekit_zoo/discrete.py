"""Likelihoods for 8-bit images: normalised probabilities of the 256 integer pixel values.

Data arrive as floats k/255; both likelihoods give P(x = k/255 | z) that sums to one
over k = 0..255 for every pixel, so -log p(x) / (D ln 2) is an exact number of bits
per dimension, comparable with the PixelCNN++/NVAE literature.

Channel layout of the decoder's ``C * params_per_channel`` outputs: the parameters
of data channel c are the contiguous block ``[c * k, (c + 1) * k)``.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEVELS = 256
HALF_BIN = 1.0 / (LEVELS - 1)  # half a bin on the [-1, 1] scale: bins are 2/255 wide


def per_channel(params: Tensor, channels: int, k: int) -> Tensor:
    """``(B, C*k, H, W)`` -> ``(B, C, k, H, W)``: each data channel's own parameters."""
    b, _, h, w = params.shape
    return params.view(b, channels, k, h, w)


class DiscretisedLogisticMixture(nn.Module):
    """The discretised logistic mixture (Salimans et al. 2017, PixelCNN++; NVAE).

    Each channel of each pixel has ``mixtures`` logistic components (a weight logit, a
    mean and a log-scale each, so ``params_per_channel = 3 * mixtures``) on the [-1, 1]
    scale; P(x = k/255) is the mass of the bin around 2k/255 - 1, with the two end bins
    reaching to -inf and +inf. Channels are independent given z (PixelCNN++ also couples
    R, G, B linearly; that needs parameters across channels and is left out).

    ``init_log_scale`` is added to the decoder's log-scale outputs, so a fresh decoder
    (outputs near 0) starts with components a few bins wide instead of spanning the whole
    range -- otherwise Adam spends thousands of steps just shrinking them.
    """

    support = "8bit"  # a distribution over the 256 values: `vaekit evaluate` gives bits/dim

    def __init__(
        self,
        mixtures: Annotated[int, "logistic components per channel of each pixel"] = 10,
        min_log_scale: Annotated[float, "lower bound of each component's log-scale"] = -7.0,
        init_log_scale: Annotated[
            float, "added to the decoder's log-scales: a fresh decoder's start width"
        ] = -3.0,
    ):
        super().__init__()
        from vaekit.errors import UsageError

        if mixtures < 1:
            raise UsageError(f"dmol needs mixtures >= 1, got {mixtures}")
        self.mixtures = mixtures
        self.min_log_scale = min_log_scale
        self.init_log_scale = init_log_scale
        self.params_per_channel = 3 * mixtures

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Weight logits, means (tanh, in (-1, 1)) and log-scales: each ``(B, C, M, H, W)``."""
        channels = params.shape[1] // self.params_per_channel
        p = per_channel(params, channels, self.params_per_channel)
        logits, means, log_scales = p.chunk(3, dim=2)
        log_scales = (log_scales + self.init_log_scale).clamp(min=self.min_log_scale)
        return logits, torch.tanh(means), log_scales

    def pixel_log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log P(x | z) per data dimension ``(B, C, H, W)``, in nats."""
        logits, means, log_scales = self._split(params)
        centred = (2 * x - 1)[:, :, None] - means  # (B, C, M, H, W) on the [-1, 1] scale
        inv_s = torch.exp(-log_scales)
        upper = inv_s * (centred + HALF_BIN)
        # log(sigmoid(u) - sigmoid(l)) = log sigmoid(u) + log sigmoid(-l) + log(1 - e^(l-u)),
        # and u - l = inv_s * 2 HALF_BIN: the left tail keeps the first term, the right tail
        # the second, an inner bin all three. Each is computed once and masked (not three
        # branches of torch.where): the likelihood was most of a 32x32 RGB training step.
        log_below_upper = F.logsigmoid(upper)
        log_above_lower = F.logsigmoid(inv_s * (2 * HALF_BIN) - upper)
        log_width = torch.log(-torch.expm1(-(inv_s * (2 * HALF_BIN)).clamp(min=1e-12)))
        level = (x * (LEVELS - 1)).round()[:, :, None]  # (B, C, 1, H, W), broadcast over M
        not_left, not_right = (level > 0).to(x.dtype), (level < LEVELS - 1).to(x.dtype)
        log_mass = (
            log_below_upper * not_right
            + log_above_lower * not_left
            + log_width * (not_left * not_right)
        )
        return torch.logsumexp(log_mass + torch.log_softmax(logits, dim=2), dim=2)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x | z) ``(B,)`` in nats, summed over every dimension."""
        return self.pixel_log_prob(x, params).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        """The mixture's mean of the logistic means, on [0, 1] ``(B, C, H, W)``."""
        logits, means, _ = self._split(params)
        mu = (torch.softmax(logits, dim=2) * means).sum(2)
        return ((mu + 1) / 2).clamp(0.0, 1.0)

    def sample(self, params: Tensor) -> Tensor:
        """A draw: a component by its weight, a logistic draw, rounded to the 8-bit grid."""
        logits, means, log_scales = self._split(params)
        gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp(1e-10, 1 - 1e-10)))
        pick = F.one_hot((logits + gumbel).argmax(2), self.mixtures).movedim(-1, 2)
        mu = (means * pick).sum(2)
        s = torch.exp((log_scales * pick).sum(2))
        u = torch.rand_like(mu).clamp(1e-6, 1 - 1e-6)
        x = mu + s * (torch.log(u) - torch.log1p(-u))
        return (((x + 1) / 2).clamp(0.0, 1.0) * (LEVELS - 1)).round() / (LEVELS - 1)


class Categorical256(nn.Module):
    """A 256-way categorical per channel of each pixel: ``params_per_channel = 256``
    logits. The most flexible 8-bit likelihood (any shape of distribution, no ordering
    of the values); its decoder has 256 outputs per data channel, so keep images small
    or the decoder convolutional."""

    params_per_channel = LEVELS
    support = "8bit"  # a distribution over the 256 values: `vaekit evaluate` gives bits/dim

    def __init__(self) -> None:  # no options (nn.Module's own would take any)
        super().__init__()

    def _log_probs(self, params: Tensor) -> Tensor:
        channels = params.shape[1] // LEVELS
        return torch.log_softmax(per_channel(params, channels, LEVELS), dim=2)

    def pixel_log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log P(x | z) per data dimension ``(B, C, H, W)``, in nats."""
        level = (x * (LEVELS - 1)).round().long().clamp(0, LEVELS - 1)
        return self._log_probs(params).gather(2, level[:, :, None]).squeeze(2)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x | z) ``(B,)`` in nats, summed over every dimension."""
        return self.pixel_log_prob(x, params).flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        """The expected value sum_k P(k) k/255, ``(B, C, H, W)``."""
        grid = torch.arange(LEVELS, device=params.device, dtype=params.dtype) / (LEVELS - 1)
        probs = self._log_probs(params).exp()
        return (probs * grid[:, None, None]).sum(2).clamp(0.0, 1.0)

    def sample(self, params: Tensor) -> Tensor:
        """A draw of k/255 per dimension (Gumbel-max)."""
        logits = self._log_probs(params)
        gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp(1e-10, 1 - 1e-10)))
        return (logits + gumbel).argmax(2).float() / (LEVELS - 1)


def bits_per_dim(neg_log_prob_nats: Tensor | float, dims: int) -> Tensor | float:
    """-log p(x) in nats (summed over ``dims`` dimensions) -> bits per dimension."""
    return neg_log_prob_nats / (dims * math.log(2))
