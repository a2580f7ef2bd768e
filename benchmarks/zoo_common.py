"""Shared pieces of the zoo benchmarks: IWAE bound batched over K, image sharpness."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import Tensor


@torch.no_grad()
def iwae_bound(model, x: Tensor, k: int = 1000, chunk: int = 100) -> Tensor:
    """(B,) log (1/K sum_k p(x, z_k) / q(z_k|x)), z_k ~ q(z|x), in nats; the K draws go
    through the decoder ``chunk`` at a time. A VampPrior's components are encoded once."""
    frozen = getattr(model.prior, "frozen", None)
    with frozen() if frozen else contextlib.nullcontext():
        q = model.posterior(x)
        log_w = []
        for start in range(0, k, chunk):
            c = min(chunk, k - start)
            z = q.rsample(c)  # (c, B, D)
            flat = z.reshape(-1, z.shape[-1])
            params = model.decode(flat)
            repeated = x.float().repeat(c, 1, 1, 1)
            log_px = model.likelihood.log_prob(repeated, params).view(c, -1)
            log_pz = model.prior.log_prob(flat).view(c, -1)
            log_w.append(log_px + log_pz - q.log_prob(z))
        return torch.logsumexp(torch.cat(log_w), 0) - math.log(k)


@torch.no_grad()
def neg_elbo(model, x: Tensor) -> Tensor:
    """(B,) -ELBO in nats, one posterior draw (what vaekit's validation reports)."""
    frozen = getattr(model.prior, "frozen", None)
    with frozen() if frozen else contextlib.nullcontext():
        return model.elbo(x).neg_elbo


def grey(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> (N, H, W) luminance."""
    if images.shape[1] == 3:
        return np.tensordot(np.array([0.299, 0.587, 0.114]), images, axes=([0], [1]))
    return images[:, 0]


def laplacian_variances(images: np.ndarray) -> np.ndarray:
    """(N,) variance of the 4-neighbour Laplacian of each image's luminance (the usual
    focus measure: blur lowers it)."""
    g = grey(images)
    lap = g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4 * g[:, 1:-1, 1:-1]
    return lap.reshape(len(g), -1).var(1)


def laplacian_variance(images: np.ndarray) -> float:
    """Mean over images of :func:`laplacian_variances`."""
    return float(laplacian_variances(images).mean())


def high_frequency_share(images: np.ndarray, cutoff: float = 0.25) -> float:
    """Mean share of the luminance's spectral energy (mean removed) above ``cutoff`` cycles
    per pixel (Nyquist is 0.5)."""
    g = grey(images)
    g = g - g.mean((1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(g)) ** 2
    fy = np.fft.fftfreq(g.shape[1])[:, None]
    fx = np.fft.fftfreq(g.shape[2])[None, :]
    high = np.sqrt(fy**2 + fx**2) > cutoff
    return float((power[:, high].sum(1) / power.sum((1, 2)).clip(1e-12)).mean())


def nyquist_share(images: np.ndarray) -> float:
    """Mean share of the luminance's spectral energy (mean removed) on the Nyquist lines
    (0.5 cycles per pixel across rows or columns): where a one-pixel checkerboard or
    stripe pattern, the artefact of stride-2 transposed convolutions, puts its energy."""
    g = grey(images)
    g = g - g.mean((1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(g)) ** 2
    on_line = (np.abs(np.fft.fftfreq(g.shape[1]))[:, None] == 0.5) | (
        np.abs(np.fft.fftfreq(g.shape[2]))[None, :] == 0.5
    )
    return float((power[:, on_line].sum(1) / power.sum((1, 2)).clip(1e-12)).mean())
