"""``vaekit evaluate``: the numbers a VAE is judged by, in nats, on a held-out split.

For every image of the split, in fixed-order batches (memory does not grow with N):

- −ELBO = reconstruction NLL + KL(q(z|x) ‖ p(z)), the reconstruction term from one
  posterior draw, the KL in closed form where the prior has one;
- the importance-weighted bound (Burda et al. 2016) with K posterior draws,
  log p(x) ≥ IWAE_K = log (1/K) Σ_k p(x, z_k) / q(z_k | x), reported as the estimate
  −IWAE_K of −log p(x) for K = 1, 10, 100, … up to ``iwae_k``; the draws are
  nested (IWAE_10 uses the first 10 of IWAE_100's draws) and decoded in chunks of a
  fixed memory budget (:mod:`vaekit.importance`), so K = 1,000 costs time, not memory;
- the KL per latent dimension, and the active units: dimensions whose posterior mean
  varies over the data, Cov_x E_q[z_d] > 0.01 (Burda et al. 2016);
- bits per dimension where the likelihood is a discrete distribution over the data's
  values (otherwise a note says why there is none);
- with ``by_label``, the same per class (or per binary attribute).

The draws come from one generator seeded with ``seed``: the same run, data and
seed give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vaekit.data import HELD_OUT, ImageDataset
from vaekit.errors import UsageError
from vaekit.figures import ACTIVE_THRESHOLD
from vaekit.run_data import (  # noqa: F401 - importable from vaekit.evaluate as before
    device_of,
    open_run_data,
    open_split,
    subsample,
)

if TYPE_CHECKING:
    pass

#: ``progress(done, total)`` after each batch.
Progress = Callable[[int, int], None]

#: Posterior means kept (a seeded subset) for the latent scatter.
KEEP_MEANS = 5000


def iwae_ladder(k: int) -> list[int]:
    """The sample counts reported: 1, 10, 100, … below ``k``, and ``k`` itself."""
    if k < 1:
        return []
    ladder = [10**i for i in range(int(math.log10(k)) + 1) if 10**i < k]
    return [*ladder, k]


@dataclass
class GroupEvaluation:
    """The figures of one class or attribute (means over its images, nats)."""

    name: str
    n: int
    neg_elbo: float
    recon_nll: float
    kl: float
    iwae: dict[int, float]
    active_units: int
    kl_per_dim: list[float] | None


@dataclass
class Evaluation:
    """What :func:`evaluate` measured (means over the split's images, nats)."""

    run_dir: str
    split: str
    n: int
    seed: int
    likelihood: str
    data_dims: int
    neg_elbo: float
    neg_elbo_se: float
    recon_nll: float
    kl: float
    iwae: dict[int, float]
    iwae_se: dict[int, float]
    #: per latent dimension; None when the prior's KL does not split (Monte Carlo estimate)
    kl_per_dim: list[float] | None
    mean_variance: list[float]
    #: E_x E_q[z_d]: the centre of the data's codes (the traversals start there)
    mean_posterior_mean: list[float]
    active_units: int
    bits_per_dim: float | None
    bits_note: str
    groups: list[GroupEvaluation] = field(default_factory=list)
    group_kind: str = ""
    #: a seeded subset of posterior means and their labels (for the scatter; not in JSON)
    sample_means: np.ndarray | None = None
    sample_labels: np.ndarray | None = None
    class_names: list[str] | None = None
    #: a class-conditional model: its bound is on log p(x|y), the class given
    conditional: bool = False
    #: what the model generates (:mod:`vaekit.generation`), when asked for
    generation: Any = None

    @property
    def active(self) -> list[int]:
        """Indices of the active dimensions."""
        return [d for d, v in enumerate(self.mean_variance) if v > ACTIVE_THRESHOLD]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (sample counts become string keys)."""
        data = asdict(self)
        for key in ("sample_means", "sample_labels", "class_names"):
            data.pop(key)
        data["generation"] = self.generation.to_dict() if self.generation is not None else None
        data["active_threshold"] = ACTIVE_THRESHOLD
        data["iwae"] = {str(k): v for k, v in self.iwae.items()}
        data["iwae_se"] = {str(k): v for k, v in self.iwae_se.items()}
        for group in data["groups"]:
            group["iwae"] = {str(k): v for k, v in group["iwae"].items()}
        return data


class _Sums:
    """Running sums for a set of groups (row 0: every image), in float64."""

    def __init__(
        self, groups: int, latent_dim: int, kl_columns: int, ladder: list[int], device: torch.device
    ):
        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(groups, *shape, dtype=torch.float64, device=device)

        self.n = zeros()
        self.neg_elbo, self.neg_elbo_sq = zeros(), zeros()
        self.recon, self.kl = zeros(), zeros()
        self.iwae, self.iwae_sq = zeros(len(ladder)), zeros(len(ladder))
        self.kl_dim = zeros(kl_columns)
        self.mu, self.mu_sq = zeros(latent_dim), zeros(latent_dim)
        self.shift: torch.Tensor | None = None  # the first batch's mean: stable variances

    def add(
        self,
        member: torch.Tensor,
        neg_elbo: torch.Tensor,
        recon: torch.Tensor,
        kl_dim: torch.Tensor,
        iwae: torch.Tensor | None,
        mu: torch.Tensor,
    ) -> None:
        """Add a batch; ``member`` (B, G) float64 says which groups each image is in."""
        m = member.T  # (G, B)
        if self.shift is None:
            self.shift = mu.double().mean(0)
        self.n += m.sum(1)
        self.neg_elbo += m @ neg_elbo
        self.neg_elbo_sq += m @ neg_elbo.square()
        self.recon += m @ recon
        self.kl_dim += m @ kl_dim
        self.kl += m @ kl_dim.sum(1)
        if iwae is not None:  # (B, L)
            self.iwae += m @ iwae
            self.iwae_sq += m @ iwae.square()
        centred = mu.double() - self.shift
        self.mu += m @ centred
        self.mu_sq += m @ centred.square()

    def means(self, g: int) -> dict[str, Any]:
        n = max(float(self.n[g]), 1.0)
        mean_mu = self.mu[g] / n
        variance = (self.mu_sq[g] / n - mean_mu.square()).clamp(min=0)
        return {
            "n": int(self.n[g]),
            "neg_elbo": float(self.neg_elbo[g]) / n,
            "neg_elbo_sq": float(self.neg_elbo_sq[g]) / n,
            "recon": float(self.recon[g]) / n,
            "kl": float(self.kl[g]) / n,
            "iwae": (self.iwae[g] / n).tolist(),
            "iwae_sq": (self.iwae_sq[g] / n).tolist(),
            "kl_dim": (self.kl_dim[g] / n).tolist(),
            "variance": variance.tolist(),
            "mean_mu": (mean_mu + self.shift).tolist() if self.shift is not None else [],
        }


def _standard_error(mean: float, mean_sq: float, n: int) -> float:
    return math.sqrt(max(mean_sq - mean * mean, 0.0) / max(n - 1, 1))


def bits_per_dim_note(likelihood: Any, name: str, binary_data: bool) -> tuple[bool, str]:
    """Whether bits/dim means something for this likelihood and data, and why (not).

    A likelihood declares ``support``: ``"8bit"`` (a distribution over the 256 values),
    ``"binary"`` (over {0, 1}: exact only on binary images) or, by default,
    ``"continuous"`` (a density, whose value at 8-bit images is no probability)."""
    support = getattr(likelihood, "support", "continuous")
    if support == "8bit":
        return True, ""
    if support == "binary":
        if binary_data:
            return True, ""
        return False, (
            f"no bits/dim: likelihood '{name}' is a distribution over {{0, 1}} and these "
            "images have grey levels, so its NLL is no probability of the 8-bit values"
        )
    return False, (
        f"no bits/dim: likelihood '{name}' is a density over continuous values; its −log "
        "density of 8-bit images is not a code length (a discrete likelihood gives one)"
    )


def _memberships(
    data: ImageDataset, by_label: bool
) -> tuple[list[str], str, Callable[[slice], np.ndarray]]:
    """Group names, their kind and ``rows -> (B, 1 + G)`` membership (column 0: all)."""
    if not by_label:
        return [], "", lambda rows: np.ones((len(data.images[rows]), 1))
    if data.labels is not None and data.class_names:
        names = list(data.class_names)

        def classes(rows: slice) -> np.ndarray:
            labels = data.labels[rows]  # type: ignore[index]
            member = np.zeros((len(labels), 1 + len(names)))
            member[:, 0] = 1
            known = labels >= 0
            member[np.flatnonzero(known), 1 + labels[known]] = 1
            return member

        return names, "class", classes
    if data.attributes is not None and data.attribute_names:
        names = list(data.attribute_names)

        def attributes(rows: slice) -> np.ndarray:
            flags = data.attributes[rows]  # type: ignore[index]
            return np.concatenate([np.ones((len(flags), 1)), flags.astype(np.float64)], 1)

        return names, "attribute", attributes
    raise UsageError(
        f"--by-label needs class labels or attributes, and dataset '{data.source}' has neither"
    )


@torch.inference_mode()
def evaluate_model(
    model: torch.nn.Module,
    data: ImageDataset,
    *,
    iwae_k: int = 100,
    by_label: bool = False,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    keep_means: int = KEEP_MEANS,
    split: str = "",
    run_dir: str = "",
    chunk_bytes: int | None = None,
) -> Evaluation:
    """Evaluate ``model`` (eval mode, on ``device``) on every image of ``data``
    (already preprocessed as the model expects); see the module docstring.
    ``chunk_bytes``: the memory a chunk of decoded importance samples may use (None:
    :func:`vaekit.importance.default_chunk_bytes`); it changes the speed, not the figures."""
    from vaekit.heap import release_mapped_pages, trim_heap, window_rows
    from vaekit.importance import (
        batch_terms,
        chunk_rows,
        decoded_row_bytes,
        default_chunk_bytes,
        keep_in_arena,
    )
    from vaekit.limits import check_iwae_k

    check_iwae_k(iwae_k)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if chunk_bytes is not None and chunk_bytes < 1:
        raise UsageError(f"the chunk budget must be >= 1 byte, got {chunk_bytes}")
    n = len(data)
    if n == 0:
        raise UsageError(f"no images to evaluate in split '{split or 'all'}'")
    device = torch.device(device)
    chunk_bytes = default_chunk_bytes(device) if chunk_bytes is None else chunk_bytes
    config = model.config
    num_classes = int(config.num_classes)
    latent_dim = int(config.latent_dim)
    ladder = iwae_ladder(iwae_k)
    names, kind, membership = _memberships(data, by_label)
    chunk = chunk_rows(decoded_row_bytes(model, latent_dim, num_classes, device), chunk_bytes)
    if device.type == "cpu":
        keep_in_arena(chunk_bytes)
    sums: _Sums | None = None  # made at the first batch: it knows the KL's columns
    generator = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(n, size=min(n, keep_means), replace=False))
    kept_means = np.zeros((len(kept), latent_dim), dtype=np.float32)
    binary_data = True
    window = window_rows(data.images, batch_size)
    release_mapped_pages(data.images)
    done = 0
    if progress:
        progress(0, n)
    for lo in range(0, n, window):
        images = data.images[lo : lo + window]
        for start in range(0, len(images), batch_size):
            rows = slice(lo + start, lo + start + len(images[start : start + batch_size]))
            raw = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            if binary_data:
                binary_data = bool(((raw == 0) | (raw == 255)).all())
            x = raw.to(device).float().div_(255.0)
            y = None
            if num_classes:
                labels = data.labels[rows] if data.labels is not None else None
                y = _one_hot(labels, num_classes, len(x), device)
            tick = None
            if progress:  # within a batch too: at K = 1000 one batch takes minutes

                def tick(fraction: float, base: int = rows.start, size: int = len(x)) -> None:
                    progress(base + int(fraction * size), n)

            terms = batch_terms(model, x, y, ladder, generator, chunk, tick)
            if sums is None:
                sums = _Sums(1 + len(names), latent_dim, terms[2].shape[1], ladder, device)
            member = torch.from_numpy(membership(rows)).to(device)
            sums.add(member, *terms)
            mu = terms[-1]
            inside = kept[(kept >= rows.start) & (kept < rows.stop)]
            if len(inside):
                where = np.searchsorted(kept, inside)
                kept_means[where] = mu[torch.from_numpy(inside - rows.start)].float().cpu().numpy()
            done = rows.stop
            if progress:
                progress(done, n)
        release_mapped_pages(images)
        trim_heap()

    assert sums is not None
    total = sums.means(0)
    kl_splits = len(total["kl_dim"]) == latent_dim
    likelihood_name = str(config.likelihood)
    dims = int(np.prod(data.image_shape))
    meaningful, note = bits_per_dim_note(model.likelihood, likelihood_name, binary_data)
    best = total["iwae"][-1] if ladder else total["neg_elbo"]
    groups = []
    for g, name in enumerate(names, start=1):
        part = sums.means(g)
        if part["n"] == 0:
            continue
        groups.append(
            GroupEvaluation(
                name=name,
                n=part["n"],
                neg_elbo=part["neg_elbo"],
                recon_nll=part["recon"],
                kl=part["kl"],
                iwae=dict(zip(ladder, part["iwae"], strict=True)),
                active_units=int(sum(v > ACTIVE_THRESHOLD for v in part["variance"])),
                kl_per_dim=part["kl_dim"] if kl_splits else None,
            )
        )
    return Evaluation(
        run_dir=run_dir,
        split=split or "all",
        n=total["n"],
        seed=seed,
        likelihood=likelihood_name,
        data_dims=dims,
        neg_elbo=total["neg_elbo"],
        neg_elbo_se=_standard_error(total["neg_elbo"], total["neg_elbo_sq"], total["n"]),
        recon_nll=total["recon"],
        kl=total["kl"],
        iwae=dict(zip(ladder, total["iwae"], strict=True)),
        iwae_se={
            k: _standard_error(m, sq, total["n"])
            for k, m, sq in zip(ladder, total["iwae"], total["iwae_sq"], strict=True)
        },
        kl_per_dim=total["kl_dim"] if kl_splits else None,
        mean_variance=total["variance"],
        mean_posterior_mean=total["mean_mu"],
        active_units=int(sum(v > ACTIVE_THRESHOLD for v in total["variance"])),
        bits_per_dim=best / (dims * math.log(2)) if meaningful else None,
        bits_note=note,
        groups=groups,
        group_kind=kind,
        sample_means=kept_means,
        sample_labels=None if data.labels is None else data.labels[kept].copy(),
        class_names=data.class_names,
        conditional=bool(num_classes),
    )


def _one_hot(
    labels: np.ndarray | None, num_classes: int, n: int, device: torch.device
) -> torch.Tensor:
    """One-hot class vectors (all zeros for unlabelled rows or data without labels)."""
    from vaekit.model import one_hot_labels

    if labels is None:
        return torch.zeros(n, num_classes, device=device)
    return one_hot_labels(torch.from_numpy(labels.astype(np.int64)), num_classes).to(device)


def evaluate(
    model_dir: str | Path = "runs/latest",
    data: str | Path | ImageDataset | None = None,
    *,
    split: str | Sequence[str] | None = HELD_OUT,
    iwae_k: int = 100,
    by_label: bool = False,
    batch_size: int = 256,
    seed: int = 0,
    accelerator: str = "cpu",
    progress: Progress | None = None,
    max_images: int | None = None,
    generation: bool = False,
    clusters: Sequence[str | Path] = (),
    samples: int | None = None,
    judge_steps: int | None = None,
    judge_progress: Progress | None = None,
    chunk_bytes: int | None = None,
) -> Evaluation:
    """Evaluate the run in ``model_dir`` on ``split`` of ``data`` (None: the run's own
    data), read with the run's preprocessing and split; ``max_images``: a seeded random
    subset of that many (in data order). ``split``: a name (``None``: every image), or
    names to try in order, the first the data has images of (by default ``test``, else
    ``val``: the embedded digits have no test split). See :func:`evaluate_model`.

    ``generation``: also measure what the model generates against the split's real
    images (:func:`vaekit.generation.evaluate_generation`: ``samples`` draws from the
    prior and from each of ``clusters``, judged by a classifier trained on the run's
    labelled training images for ``judge_steps`` steps). ``chunk_bytes``: as
    :func:`evaluate_model` takes it."""
    found = None
    if generation:  # the judge trains on the data's training images: read them all
        loaded, everything, dataset, name, device = open_run_data(
            model_dir, data, split, accelerator
        )
        from vaekit.generation import SAMPLES, evaluate_generation
        from vaekit.judge import JUDGE_STEPS

        found = evaluate_generation(
            loaded,
            everything,
            name,
            clusters=clusters,
            samples=SAMPLES if samples is None else samples,
            seed=seed,
            judge_steps=JUDGE_STEPS if judge_steps is None else judge_steps,
            progress=judge_progress,
        )
    else:  # the split is all that is read, where the data's source can
        loaded, dataset, name, device = open_split(model_dir, data, split, accelerator)
    result = evaluate_model(
        loaded.model,
        subsample(dataset, max_images, seed),
        iwae_k=iwae_k,
        by_label=by_label,
        batch_size=batch_size,
        seed=seed,
        device=device,
        progress=progress,
        split=name,
        run_dir=str(loaded.path),
        chunk_bytes=chunk_bytes,
    )
    result.generation = found
    return result
