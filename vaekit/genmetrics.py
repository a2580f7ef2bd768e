"""The arithmetic of judging generated images: distances between sets of features and
the fidelity of reconstructions. Plain numpy/torch on arrays; nothing here knows a run.

- :func:`frechet_distance`: the Fréchet (2-Wasserstein) distance between Gaussians
  fitted to two sets of features, ``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)``
  (Dowson & Landau 1982; the formula FID applies to Inception features). vaekit applies
  it to its judge's features, so it is *not* FID and is never called that.
- :func:`precision_recall`: improved precision and recall (Kynkäänniemi et al. 2019):
  each set's support is the union of balls around its points with radius the distance
  to the k-th nearest neighbour in the same set; precision is the share of generated
  points inside the real support, recall the share of real points inside the generated.
- :func:`psnr` and :func:`ssim` of uint8 images (SSIM: Wang et al. 2004, Gaussian
  window σ = 1.5, 11 pixels wide or the largest odd size the image holds, constants
  K₁ = 0.01, K₂ = 0.03, averaged over channels and positions).
- :func:`total_variation`: half the L1 distance between two distributions.
- :func:`nearest_distance`: the median distance from each point of a set to its nearest
  training point; drawn images nearer the training images than unseen real images are
  copies of the training set, which the figures above reward.
"""

from __future__ import annotations

import numpy as np
import torch

#: Neighbour whose distance sets a point's radius (the paper's default).
PR_NEIGHBOUR = 3
#: Rows of a distance matrix computed at once, at most.
DISTANCE_ROWS = 1024
#: Bytes of a distance-matrix chunk, at most: fewer rows at once against a large set (all
#: of a data set's training images), so memory stays flat in its size.
DISTANCE_BYTES = 32 * 2**20


def _row_chunks(n: int, against: int) -> range:
    """Starts of the row chunks of an (n, against) float32 distance matrix."""
    rows = max(1, min(DISTANCE_ROWS, DISTANCE_BYTES // (4 * max(against, 1))))
    return range(0, n, rows)


def _moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need (N >= 2, F) features, got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two (N, F) feature sets.

    ``Tr((Σ₁Σ₂)^½)`` is computed as the trace of the symmetric ``(Σ₁^½ Σ₂ Σ₁^½)^½``
    (the same eigenvalues), which needs no complex square root and stays real and
    non-negative for rank-deficient covariances (fewer samples than features)."""
    mu_a, cov_a = _moments(features_a)
    mu_b, cov_b = _moments(features_b)
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    cross = float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(value, 0.0)


def _kth_neighbour_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point of the same set."""
    radii = torch.empty(len(points), dtype=points.dtype)
    k = min(k, len(points) - 1)
    chunks = _row_chunks(len(points), len(points))
    for lo in chunks:
        d = torch.cdist(points[lo : lo + chunks.step], points)
        # the point itself is at distance 0: the k-th neighbour is the (k+1)-th smallest
        radii[lo : lo + chunks.step] = d.kthvalue(k + 1, dim=1).values
    return radii


def _share_inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Share of ``queries`` inside at least one ball (centre, radius)."""
    inside = 0
    chunks = _row_chunks(len(queries), len(centres))
    for lo in chunks:
        d = torch.cdist(queries[lo : lo + chunks.step], centres)
        inside += int((d <= radii[None, :]).any(1).sum())
    return inside / len(queries)


def precision_recall(
    real: np.ndarray, generated: np.ndarray, k: int = PR_NEIGHBOUR
) -> tuple[float, float]:
    """Improved (precision, recall) of ``generated`` against ``real`` (N, F) features:
    precision, the share of generated points within the k-NN support of the real set;
    recall, the share of real points within the k-NN support of the generated set."""
    if len(real) < 2 or len(generated) < 2:
        raise ValueError("precision/recall need at least two real and two generated points")
    r = torch.as_tensor(np.asarray(real, dtype=np.float32))
    g = torch.as_tensor(np.asarray(generated, dtype=np.float32))
    precision = _share_inside(g, r, _kth_neighbour_radii(r, k))
    recall = _share_inside(r, g, _kth_neighbour_radii(g, k))
    return precision, recall


def psnr(original: np.ndarray, reconstructed: np.ndarray) -> float:
    """Mean over images of the peak signal-to-noise ratio (dB) of uint8 (N, C, H, W)
    images; an exact copy counts as 100 dB (its MSE is 0)."""
    a = np.asarray(original, dtype=np.float64).reshape(len(original), -1)
    b = np.asarray(reconstructed, dtype=np.float64).reshape(len(reconstructed), -1)
    mse = ((a - b) ** 2).mean(1)
    values = np.where(mse > 0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 100.0)
    return float(values.mean())


def _gaussian_window(size: int, sigma: float = 1.5) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    weights /= weights.sum()
    return weights[:, None] * weights[None, :]


def ssim(original: np.ndarray, reconstructed: np.ndarray, window: int = 11) -> float:
    """Mean structural similarity of uint8 (N, C, H, W) images (see the module docstring);
    the window shrinks to the largest odd size the image holds (7 on 8×8 digits)."""
    a = torch.as_tensor(np.asarray(original), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(reconstructed), dtype=torch.float64)
    n, c, h, w = a.shape
    size = min(window, h, w)
    size -= 1 - size % 2  # odd
    kernel = _gaussian_window(size).expand(c, 1, size, size)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    total = 0.0
    for lo in range(0, n, 256):
        x, y = a[lo : lo + 256], b[lo : lo + 256]

        def blur(t: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(t, kernel, groups=c)

        mx, my = blur(x), blur(y)
        vx = blur(x * x) - mx * mx
        vy = blur(y * y) - my * my
        cxy = blur(x * y) - mx * my
        index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        total += float(index.mean(dim=(1, 2, 3)).sum())
    return total / n


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance between two distributions (each normalised to sum 1)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    return 0.5 * float(np.abs(p - q).sum())


def nearest_distance(features: np.ndarray, training: np.ndarray) -> float:
    """Median over the rows of ``features`` (N, F) of the distance to their nearest row of
    ``training`` (M, F). NaN when either set is empty."""
    if len(features) == 0 or len(training) == 0:
        return float("nan")
    reference = torch.as_tensor(np.asarray(training, dtype=np.float32))
    queries = torch.as_tensor(np.asarray(features, dtype=np.float32))
    chunks = _row_chunks(len(queries), len(reference))
    nearest = [
        torch.cdist(queries[lo : lo + chunks.step], reference).min(1).values for lo in chunks
    ]
    return float(torch.cat(nearest).median())
