"""Pictures of a run: training curves, latent scatter, KL per dimension, traversals.

Every function takes plain numbers (lists, numpy arrays) and writes one PNG with
matplotlib's headless ``Agg`` backend. matplotlib is imported inside the
functions, so ``vaekit --help`` never loads it. The functions that need the
model (:func:`write_run_figures`) live at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURES_DIR = "figures"
CURVES = "curves.png"
SCATTER = "latent_scatter.png"
KL_PER_DIM = "kl_per_dim.png"
TRAVERSALS = "traversals.png"
ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016): unit d is active when Cov_x E_q[z_d] > 0.01


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display, thread-safe enough for a CLI)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    from vaekit.runs import atomic_path

    plt = _pyplot()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _series(rows: Sequence[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    """(xs, ys) of the rows that have a finite ``y``."""
    xs, ys = [], []
    for row in rows:
        value = row.get(y)
        if isinstance(value, (int, float)) and math.isfinite(value) and x in row:
            xs.append(float(row[x]))
            ys.append(float(value))
    return xs, ys


def plot_training_curves(
    epochs: Sequence[dict[str, Any]],
    steps: Sequence[dict[str, Any]],
    path: str | Path,
    title: str = "",
) -> Path:
    """Loss (with validation −ELBO), reconstruction NLL, KL and β over optimiser steps.

    ``steps`` are the per-log-step rows of ``steps.jsonl`` (thin lines; may be
    empty for runs made before it existed), ``epochs`` the rows of ``metrics.jsonl``
    (dots at each epoch's last step: the epoch's mean). A top axis gives epochs.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    panels = (
        ("loss", "training loss (nats)", axes[0, 0]),
        ("recon", "reconstruction NLL (nats)", axes[0, 1]),
        ("kl", "KL (nats)", axes[1, 0]),
        ("beta", "β (KL weight)", axes[1, 1]),
    )
    for key, label, ax in panels:
        xs, ys = _series(steps, "step", key)
        if xs:
            ax.plot(xs, ys, lw=0.8, alpha=0.6, color="tab:blue", label="per log step")
        xs, ys = _series(epochs, "step", key)
        if xs:
            ax.plot(xs, ys, "o-", ms=3, lw=1.2, color="tab:blue", label="epoch mean")
        if key == "loss":
            xs, ys = _series(epochs, "step", "val_loss")
            if xs:
                ax.plot(xs, ys, "s-", ms=3, lw=1.2, color="tab:orange", label="validation −ELBO")
        ax.set_title(label, fontsize=10, pad=22 if ax in axes[0] else 6)
        ax.grid(alpha=0.3)
        if key in ("loss", "recon"):
            _robust_ylim(ax, [r.get(key) for r in [*steps, *epochs]] + _vals(epochs, "val_loss"))
        if key == "loss":
            ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("optimiser step")
    ends = [(float(r["step"]), int(r["epoch"])) for r in epochs if "step" in r and "epoch" in r]
    if ends:
        shown = ends if len(ends) <= 10 else ends[:: math.ceil(len(ends) / 10)]
        for ax in axes[0]:
            top = ax.secondary_xaxis("top")
            top.set_xticks([s for s, _ in shown], [f"ep {e}" for _, e in shown])
            top.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _vals(rows: Sequence[dict[str, Any]], key: str) -> list[Any]:
    return [r.get(key) for r in rows]


def _robust_ylim(ax: Any, values: Sequence[Any]) -> None:
    """Clip the y-range to the bulk of the values: the first steps' huge losses would
    otherwise flatten the rest of the curve."""
    finite = np.array(
        [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)], dtype=float
    )
    if len(finite) < 5:
        return
    lo, hi = np.percentile(finite, [0, 95])
    pad = 0.1 * max(hi - lo, 1e-9)
    ax.set_ylim(lo - pad, hi + pad)


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, D) points on their first two principal axes: ((N, 2), explained share (2,)).

    A one-dimensional latent gives a second coordinate of zeros."""
    x = np.asarray(points, dtype=np.float64)
    x = x - x.mean(0, keepdims=True)
    if x.shape[1] == 1:
        return np.concatenate([x, np.zeros_like(x)], 1), np.array([1.0, 0.0])
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    var = s**2
    share = np.zeros(2)
    share[: min(2, len(var))] = var[:2] / max(var.sum(), 1e-300)
    xy = np.zeros((len(x), 2))
    xy[:, : min(2, len(vt))] = x @ vt[:2].T  # fewer than two points: zeros where none
    return xy, share


def plot_latent_scatter(
    means: np.ndarray,
    labels: np.ndarray | None,
    class_names: Sequence[str] | None,
    path: str | Path,
    title: str = "posterior means (PCA)",
) -> Path:
    """2-D PCA of posterior means, one colour per class, with a legend of class names."""
    plt = _pyplot()
    xy, share = pca_2d(means)
    fig, ax = plt.subplots(figsize=(7, 6))
    size = 4 if len(xy) > 2000 else 14
    if labels is None or class_names is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.5, color="tab:blue", lw=0)
    else:
        cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
        for k, name in enumerate(class_names):
            mask = labels == k
            if mask.any():
                colour = cmap(k % cmap.N)
                ax.scatter(
                    xy[mask, 0], xy[mask, 1], s=size, alpha=0.6, color=colour, lw=0, label=name
                )
        unlabelled = labels < 0
        if unlabelled.any():
            ax.scatter(
                xy[unlabelled, 0], xy[unlabelled, 1], s=size, color="0.6", lw=0, label="unlabelled"
            )
        ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel(f"PC 1 ({share[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({share[1]:.0%} of variance)")
    ax.set_title(f"{title}, {len(xy):,} images", fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_kl_per_dim(
    kl_per_dim: Sequence[float] | None,
    mean_variance: Sequence[float],
    path: str | Path,
    threshold: float = ACTIVE_THRESHOLD,
    total_kl: float | None = None,
) -> Path:
    """KL per latent dimension (bars, active units coloured) above Cov_x E_q[z_d] (log
    scale, with the active-unit threshold), so the two measures can be compared. Without
    ``kl_per_dim`` (a prior whose KL does not split by dimension) the top panel says so."""
    plt = _pyplot()
    var = np.asarray(mean_variance, dtype=float)
    split = kl_per_dim is not None
    kl = np.asarray(kl_per_dim if split else np.zeros(len(var)), dtype=float)
    active = var > threshold
    dims = np.arange(len(kl))
    width = max(6.0, min(16.0, 0.35 * len(kl) + 2))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 5.5), sharex=True)
    colours = np.where(active, "tab:blue", "0.7")
    top.bar(dims, kl, color=colours)
    top.set_ylabel("KL (nats / image)")
    total = kl.sum() if split else total_kl
    shown_total = "" if total is None else f"; total KL {total:.2f} nats"
    top.set_title(
        f"KL per latent dimension: {int(active.sum())} of {len(var)} active "
        f"(Cov_x E_q[z_d] > {threshold:g}){shown_total}",
        fontsize=10,
    )
    if not split:
        top.set_yticks([])
        top.text(
            0.5,
            0.5,
            "this prior's KL does not split by dimension\n(a Monte Carlo estimate of the total)",
            ha="center",
            va="center",
            transform=top.transAxes,
        )
    top.grid(alpha=0.3, axis="y")
    bottom.bar(dims, np.maximum(var, 1e-8), color=colours)
    bottom.axhline(threshold, color="tab:red", lw=1, ls="--", label=f"threshold {threshold:g}")
    bottom.set_yscale("log")
    bottom.set_ylabel("Cov_x E_q[z_d]")
    bottom.set_xlabel("latent dimension")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3, axis="y")
    if len(dims) <= 64:
        bottom.set_xticks(dims)
        bottom.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_traversals(
    images: np.ndarray,
    dims: Sequence[int],
    values: Sequence[float],
    path: str | Path,
    kl_per_dim: Sequence[float] | None = None,
) -> Path:
    """One row per latent dimension: uint8 images (R, K, C, H, W) decoded while that
    dimension moves through ``values`` (others held at a base code)."""
    plt = _pyplot()
    rows, cols = images.shape[:2]
    size = 0.75 if images.shape[-1] <= 32 else 1.1
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * size + 1.2, rows * size + 0.6), squeeze=False
    )
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            image = images[r, c].transpose(1, 2, 0)
            if image.shape[2] == 1:
                ax.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                note = f"\n{kl_per_dim[dims[r]]:.1f} nats" if kl_per_dim is not None else ""
                ax.set_ylabel(f"z{dims[r]}{note}", fontsize=8, rotation=0, ha="right", va="center")
            if r == rows - 1:
                ax.set_xlabel(f"{values[c]:+.1f}", fontsize=8)
    fig.suptitle(
        "latent traversals: one active dimension per row, around the data's mean code,\n"
        "in standard deviations of that dimension's posterior mean over the data",
        fontsize=9,
    )
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return _save(fig, path)
