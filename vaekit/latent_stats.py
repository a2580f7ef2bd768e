"""Per-dimension statistics of a store's latents, accumulated while they stream past.

Two sets of numbers per latent dimension, the ones a downstream model scales its
inputs with:

- of the posterior means μ: their mean and standard deviation over the rows;
- of draws z = μ + σ·ε (one per row, ε ~ N(0, I)): the same mean, and the variance
  of the mixture (1/n) Σᵢ N(μᵢ, σᵢ²), which is exactly var(μ) + mean(σ²). It is
  computed from the sums, not estimated from draws.

Standard deviations are over the rows (ddof = 0). Batches are folded in with the
pairwise update of Chan, Golub and LeVeque (1979), in float64, so the result does
not depend on how the rows were split into batches or parts (torchrun's shards).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LatentStats:
    """Running per-dimension sums of ``count`` rows of (μ, log σ²)."""

    count: int
    mean: np.ndarray  # (D,) float64: mean of μ
    m2: np.ndarray  # (D,) float64: sum of squared deviations of μ from ``mean``
    var_sum: np.ndarray  # (D,) float64: sum of σ² = exp(log σ²)

    @classmethod
    def empty(cls, latent_dim: int) -> LatentStats:
        """No rows yet."""
        zeros = np.zeros(latent_dim, dtype=np.float64)
        return cls(0, zeros.copy(), zeros.copy(), zeros.copy())

    @classmethod
    def of(cls, mu: np.ndarray, logvar: np.ndarray) -> LatentStats:
        """The statistics of one block of rows, ``mu`` and ``logvar`` (n, D)."""
        mu = np.asarray(mu, dtype=np.float64)
        n = len(mu)
        if n == 0:
            return cls.empty(mu.shape[1])
        mean = mu.mean(axis=0)
        return cls(n, mean, ((mu - mean) ** 2).sum(axis=0), np.exp(logvar, dtype=np.float64).sum(0))

    def update(self, mu: np.ndarray, logvar: np.ndarray) -> None:
        """Fold in the rows ``mu``, ``logvar`` (n, D)."""
        merged = self.merge(LatentStats.of(mu, logvar))
        self.count, self.mean, self.m2, self.var_sum = (
            merged.count,
            merged.mean,
            merged.m2,
            merged.var_sum,
        )

    def merge(self, other: LatentStats) -> LatentStats:
        """The statistics of both sets of rows together."""
        if other.count == 0 or self.count == 0:
            kept = self if other.count == 0 else other
            return LatentStats(kept.count, kept.mean.copy(), kept.m2.copy(), kept.var_sum.copy())
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return LatentStats(n, mean, m2, self.var_sum + other.var_sum)

    @property
    def std(self) -> np.ndarray:
        """(D,) standard deviation of the posterior means."""
        return np.sqrt(self.m2 / max(self.count, 1))

    @property
    def z_std(self) -> np.ndarray:
        """(D,) standard deviation of draws z = μ + σ·ε: sqrt(var(μ) + mean(σ²))."""
        return np.sqrt((self.m2 + self.var_sum) / max(self.count, 1))

    def as_arrays(self) -> dict[str, np.ndarray]:
        """What a store keeps in its ``stats`` group: ``mean``, ``std``, ``z_mean``, ``z_std``."""
        return {"mean": self.mean, "std": self.std, "z_mean": self.mean, "z_std": self.z_std}

    @classmethod
    def from_arrays(cls, count: int, mean: np.ndarray, std: np.ndarray, z_std: np.ndarray):
        """Rebuild the sums from stored ``count``, ``mean``, ``std`` and ``z_std``."""
        mean, std, z_std = (np.asarray(a, dtype=np.float64) for a in (mean, std, z_std))
        m2 = std**2 * count
        return cls(int(count), mean, m2, np.maximum(z_std**2 * count - m2, 0.0))
