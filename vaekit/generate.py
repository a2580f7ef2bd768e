"""``sample``, ``interpolate``, ``reconstruct`` and attribute vectors: latents to images.

Every function returns uint8 images ``(N, C, H, W)`` (save them with
:func:`vaekit.images.save_grid`). Random draws come from numpy generators seeded
by the caller and decoding runs in eval mode without gradients, so the same
arguments give the same images (and PNG bytes) on CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.cluster import (
    Cluster,
    Reencode,
    check_temperature,
    mean_direction,
    resolve_cluster_path,
)
from vaekit.errors import DataError, OutputExistsError, UsageError
from vaekit.images import to_uint8
from vaekit.runs import LoadedRun

METHODS = ("lerp", "slerp")
DECODE_BATCH = 256


@dataclass
class Generated:
    """Images and the latents (and class ids, for a conditional model) that made them."""

    images: np.ndarray  # (N, C, H, W) uint8
    z: np.ndarray  # (N, D) float32
    labels: np.ndarray | None = None  # (N,) class ids fed to a conditional model
    warnings: tuple[str, ...] = ()  # things the caller should tell the user


def default_model_dir(*sources: str | Path | None) -> Path:
    """The run that encoded the latents of the first source that records one (a cluster,
    a store row ``latents.h5:123`` or a latent store) when that run still exists;
    otherwise ``runs/latest``. Image files and missing names are skipped."""
    for source in sources:
        if source is None:
            continue
        recorded = None
        try:
            row = parse_store_row(str(source))
            if row is not None or Path(source).suffix.lower() in (".h5", ".hdf5"):
                from vaekit.store import LatentStore

                with LatentStore.open(row[0] if row else source) as store:
                    recorded = store.attrs.get("run_dir")
            elif not Path(source).is_file() or Path(source).suffix.lower() == ".json":
                recorded = load_cluster(source).model.get("run_dir")
        except DataError:
            continue
        if recorded and (Path(recorded) / "model.safetensors").is_file():
            return Path(recorded)
    return Path("runs/latest")


# -- model helpers -----------------------------------------------------------------------------


def class_id(run: LoadedRun, label: str) -> int:
    """The class id of ``label`` (case-insensitive) for a class-conditional model.

    A model without classes gets a DataError that names the alternative: a cluster.
    """
    if run.num_classes == 0:
        from vaekit.runs import no_classes_error

        raise no_classes_error(label)
    names = run.class_names
    lowered = [n.lower() for n in names]
    if label.lower() not in lowered:
        import difflib

        close = difflib.get_close_matches(label.lower(), lowered, n=1, cutoff=0.6)
        hint = f"; did you mean '{names[lowered.index(close[0])]}'?" if close else ";"
        raise DataError(
            f"unknown class '{label}'{hint} the model's classes are: {', '.join(names)}"
        )
    return lowered.index(label.lower())


PIXELS = ("mean", "sample")


@torch.inference_mode()
def decode(
    run: LoadedRun,
    z: np.ndarray | torch.Tensor,
    labels: np.ndarray | None = None,
    pixels: str = "mean",
    seed: int = 0,
) -> np.ndarray:
    """Decode latents ``z`` (N, D) to uint8 images (N, C, H, W), in batches: the
    likelihood's mean image (``pixels="mean"``) or a draw from it (``"sample"``, seeded)."""
    if pixels not in PIXELS:
        raise UsageError(f"unknown --pixels '{pixels}'; choose one of: {', '.join(PIXELS)}")
    z = torch.as_tensor(np.asarray(z, dtype=np.float32) if isinstance(z, np.ndarray) else z)
    latent_dim = run.config.model.latent_dim
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise DataError(
            f"latents of shape {tuple(z.shape)} do not fit the model (latent size {latent_dim})"
        )
    y = run.condition(labels, len(z))
    model, device = run.model, run.device
    if pixels == "sample":
        torch.manual_seed(seed)  # likelihood.sample draws from torch's global generator
    out = []
    for lo in range(0, len(z), DECODE_BATCH):
        zb = z[lo : lo + DECODE_BATCH].to(device, torch.float32)
        yb = None if y is None else y[lo : lo + DECODE_BATCH]
        params = model.decode(zb, yb)
        images = (
            model.likelihood.mean(params) if pixels == "mean" else (model.likelihood.sample(params))
        )
        out.append(to_uint8(images))
    if not out:
        c, h, w = run.config.model.input_shape
        return np.zeros((0, c, h, w), dtype=np.uint8)
    return np.concatenate(out)


@torch.inference_mode()
def encode_images(
    run: LoadedRun, images: np.ndarray, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, C, H, W) images -> posterior (mu, logvar), each (N, D) float32."""
    y = run.condition(labels if labels is not None else -np.ones(len(images)), len(images))
    mus, logvars = [], []
    for lo in range(0, len(images), DECODE_BATCH):
        x = torch.from_numpy(np.ascontiguousarray(images[lo : lo + DECODE_BATCH]))
        x = x.to(run.device).float() / 255.0
        yb = None if y is None else y[lo : lo + DECODE_BATCH]
        q = run.model.posterior(x, yb)
        mus.append(q.mean.float().cpu().numpy())
        logvars.append(q.logvar.float().cpu().numpy())
    return np.concatenate(mus), np.concatenate(logvars)


def reencoder(run: LoadedRun) -> Reencode:
    """Latents (N, D) -> the posterior means (N, D) of the images ``run``'s model decodes
    them to (its mean images, as uint8, as a user gets them): what a cluster's gate reads
    to check the decoded images (:meth:`vaekit.cluster.Cluster.sample`)."""

    def reencode(z: np.ndarray) -> np.ndarray:
        means = [  # a chunk's images at a time: a rejection round may hold many draws
            encode_images(run, decode(run, z[lo : lo + DECODE_BATCH]))[0]
            for lo in range(0, len(z), DECODE_BATCH)
        ]
        return np.concatenate(means) if means else np.zeros((0, z.shape[1]), np.float32)

    return reencode


class ImageCheck:
    """A :func:`reencoder` that keeps the images of the draws a gate keeps (it is told
    which by :meth:`keep`), so that the ``n`` draws of a gated cluster sample are
    decoded once, for the check and for the images returned (:meth:`images`). A round
    of more than ``2 * n`` draws is checked a chunk at a time and its images are not
    held: the kept draws are then decoded again, as memory allows."""

    def __init__(self, run: LoadedRun, n: int):
        self.reencode = reencoder(run)
        self.run = run
        self.n = n
        self.hold = max(2 * n, DECODE_BATCH)
        self._kept: list[np.ndarray] = []
        self._count = 0
        self._last: np.ndarray | None = None
        self._complete = True

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """Latents (N, D) -> the posterior means (N, D) of their decoded images."""
        if len(z) > self.hold:
            self._complete, self._last = False, None
            return self.reencode(z)
        self._last = decode(self.run, z)
        return encode_images(self.run, self._last)[0]

    def keep(self, passed: np.ndarray) -> None:
        """Keep the images of the rows of the last call that ``passed`` (bool, N)."""
        if self._last is not None:  # only as many as the sample still needs
            kept = self._last[passed][: max(self.n - self._count, 0)]
            self._kept.append(kept)
            self._count += len(kept)
        self._last = None

    def images(self) -> np.ndarray | None:
        """The ``n`` kept images, in the order the gate kept their draws; None when a
        round's images were not held or fewer than ``n`` were kept."""
        if not self._complete or self._count < self.n:
            return None
        images, self._kept = np.concatenate(self._kept), []
        return images


def store_reencoder(latents: str | Path) -> tuple[Reencode | None, str]:
    """The :func:`reencoder` of the run that encoded the store ``latents``, or None and
    why not (the run is gone or retrained, or its model is class-conditional)."""
    from vaekit.runs import open_run
    from vaekit.store import LatentStore

    with LatentStore.open(latents) as store:
        run_dir, recorded = store.attrs.get("run_dir"), store.attrs.get("weights_sha256")
    if not run_dir:
        return None, f"'{latents}' does not name the run that encoded it"
    try:
        run = open_run(run_dir)
    except DataError:
        return None, f"the run that encoded '{latents}' ({run_dir}) cannot be opened"
    if recorded and run.weights_sha256 != recorded:
        return None, f"the run that encoded '{latents}' ({run_dir}) has been trained since"
    if run.num_classes:
        return None, "a class-conditional model decodes each class apart"
    return reencoder(run), ""


def read_model_image(run: LoadedRun, path: str | Path) -> np.ndarray:
    """Read an image file the way the model's training data was read: its channels and
    square size. Returns uint8 (C, H, W)."""
    from vaekit.imageio import read_image

    c, h, w = run.config.model.input_shape
    image = read_image(path, channels=c, image_size=h if h == w else None)
    if image.shape != (c, h, w):
        raise DataError(
            f"image '{path}' has shape {image.shape} (C, H, W) but the model takes {(c, h, w)}; "
            "resize it to the model's input size"
        )
    return image


# -- sampling ----------------------------------------------------------------------------------


def load_cluster(name_or_file: str | Path | Cluster) -> Cluster:
    """A cluster from a :class:`Cluster`, a file, or a name (``smiling`` ->
    ``clusters/smiling.json``)."""
    if isinstance(name_or_file, Cluster):
        return name_or_file
    return Cluster.load(resolve_cluster_path(name_or_file))


def load_clusters(specs: Sequence[str | Path | Cluster], latent_dim: int) -> list[Cluster]:
    """Every cluster of ``specs`` (as :func:`load_cluster` takes them), loaded before any
    work that needs them: a missing or damaged file, or one of another latent size
    than the model's ``latent_dim``, fails here, not after minutes of evaluation."""
    clusters = [load_cluster(spec) for spec in specs]
    for cluster in clusters:
        check_latent_size(cluster, latent_dim)
    return clusters


def check_latent_size(cluster: Cluster, latent_dim: int) -> None:
    """Fail when the cluster's latent size is not the model's ``latent_dim``."""
    if cluster.latent_dim != latent_dim:
        raise DataError(
            f"cluster '{cluster.query}' lives in {cluster.latent_dim} latent dimensions but the "
            f"model has {latent_dim}; pass the --model that encoded its latents "
            f"({cluster.model.get('run_dir')})"
        )


def check_cluster_fits(cluster: Cluster, run: LoadedRun) -> list[str]:
    """Fail when the cluster's latent size is not the model's; return warnings when the
    latents it was fitted to came from other weights."""
    check_latent_size(cluster, run.config.model.latent_dim)
    if fitted_by(cluster, run):
        return []
    skipped = ""
    if cluster.gate is not None and "image_threshold" in cluster.gate:
        skipped = " (its check of the decoded images is skipped)"
    return [
        f"cluster '{cluster.query}' was fitted to latents of another model "
        f"({cluster.model.get('run_dir')}); its samples may not look like "
        f"'{cluster.query}'{skipped}"
    ]


def fitted_by(cluster: Cluster, run: LoadedRun) -> bool:
    """Whether ``cluster`` was fitted to latents of ``run``'s current weights (or says
    nothing of its weights, as files from before vaekit recorded them)."""
    expected, actual = cluster.model.get("weights_sha256"), run.weights_sha256
    return not (expected and actual and expected != actual)


def check_store_fits(store: Any, run: LoadedRun) -> None:
    """Fail when a latent store was not encoded by ``run``'s model (another latent size, or
    other weights): its rows would decode to nonsense."""
    latent_dim = run.config.model.latent_dim
    if store.latent_dim != latent_dim:
        raise DataError(
            f"'{store.path}' holds {store.latent_dim}-dimensional latents but the model has "
            f"{latent_dim}; use the model that encoded it (--model)"
        )
    recorded = store.attrs.get("weights_sha256")
    actual = run.weights_sha256
    if recorded and actual and recorded != actual:
        raise DataError(
            f"'{store.path}' was encoded by another model ({store.attrs.get('run_dir')}); "
            "pass that run as --model, or encode the data again with this one"
        )


def check_images_memory(run: LoadedRun, n: int, what: str, fix: str) -> None:
    """Check ``n`` output images (uint8, their latents and a PNG grid of them, which needs
    them all at once) against the memory limit before any is drawn or decoded."""
    from vaekit.limits import check_memory

    c, h, w = (int(s) for s in run.config.model.input_shape)
    scale = max(1, 64 // max(h, w))
    grid = c * (h * scale + 2) * (w * scale + 2)
    per_image = c * h * w + 8 * int(run.config.model.latent_dim) + 2 * grid  # + PIL's copy
    check_memory(float(n) * per_image, what, fix)


def sample(
    run: LoadedRun,
    n: int = 64,
    *,
    cluster: str | Path | Cluster | None = None,
    label: str | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    pixels: str = "mean",
    model_prior: bool = False,
) -> Generated:
    """Draw ``n`` images: z from the cluster r(z) when given; otherwise from the run's
    fitted prior (:mod:`vaekit.fitted_prior`) when it has one and ``model_prior`` is
    False, else from the model's prior p(z) (``prior.sample``). ``label`` conditions a
    class-conditional model on that class
    (a model without classes gets an error that points to clusters). Without ``label`` a
    class-conditional model decodes a cluster as the class its query names, and prior
    draws as the classes in turn. ``temperature``
    scales the standard deviation of z (a prior must accept a ``temperature`` keyword for
    values other than 1). ``pixels``: the likelihood's mean image, or a draw from it."""
    if n < 1:
        raise UsageError(f"-n must be >= 1, got {n}")
    check_temperature(temperature)
    check_images_memory(run, n, f"a grid of {n:,} samples", "lower -n")
    fitted = None if cluster is None else load_cluster(cluster)
    if fitted is None and not model_prior and not run.num_classes:
        fitted = drawn_prior(run)
    if label is None and fitted is not None and run.num_classes:
        label = cluster_class(run, fitted)
    labels = None
    if label is not None:
        labels = np.full(n, class_id(run, label), dtype=np.int64)
    elif run.num_classes:
        labels = np.arange(n) % run.num_classes  # the classes in turn
    notes: list[str] = []
    if fitted is not None:
        notes = check_cluster_fits(fitted, run)
        # a cluster's gate checks the decoded images with the model that fitted it only
        same_model = fitted_by(fitted, run) and not run.num_classes
        check: Reencode | None = None
        if same_model and checks_images(fitted):  # the mean images are kept, not a draw
            check = ImageCheck(run, n) if pixels == "mean" else reencoder(run)
        z = fitted.sample(n, np.random.default_rng(seed), temperature, check)
        images = check.images() if isinstance(check, ImageCheck) else None
        if images is not None:  # decoded once, for the check
            return Generated(images, z, labels, tuple(notes))
    else:
        z = prior_sample(run, n, seed, temperature, labels)
        if labels is not None and not model_prior:
            from vaekit.fitted_prior import draw_per_class

            z = draw_per_class(class_priors(run), z, labels, seed, temperature)
    return Generated(decode(run, z, labels, pixels, seed), z, labels, tuple(notes))


def checks_images(cluster: Cluster) -> bool:
    """Whether ``cluster``'s gate checks decoded images (it has an image threshold)."""
    gate = cluster.gate
    return gate is not None and gate["threshold"] > 0 and gate.get("image_threshold") is not None


def class_priors(run: LoadedRun) -> dict[int, Cluster]:
    """A class-conditional run's fitted class priors made with its current weights, by
    class id (empty: draws come from p(z|y))."""
    from vaekit.fitted_prior import load_class_priors

    if not run.num_classes:
        return {}
    return current_fits(run, load_class_priors(run.path, run.num_classes))


def drawn_prior(run: LoadedRun) -> Cluster | None:
    """The run's fitted prior when it has one fitted to its current weights (None: draws
    come from p(z))."""
    from vaekit.fitted_prior import load_fitted_prior

    fitted = load_fitted_prior(run.path)
    return None if fitted is None else current_fits(run, {0: fitted}).get(0)


def current_fits(run: LoadedRun, fits: dict[int, Cluster]) -> dict[int, Cluster]:
    """The fits made with the run's current weights: a resumed run that stopped before its
    end has new weights and old fits, which would no longer match its latent space."""
    return {
        c: fit
        for c, fit in fits.items()
        if not fit.model.get("weights_sha256")
        or fit.model.get("weights_sha256") == run.weights_sha256
    }


def has_fitted_prior(run: LoadedRun) -> bool:
    """Whether prior draws of this run come from a fit (its own, or one per class)."""
    if run.num_classes:
        return bool(class_priors(run))
    return drawn_prior(run) is not None


def prior_description(run: LoadedRun, model_prior: bool = False) -> str:
    """What prior draws come from, in words (``sample`` prints it)."""
    from vaekit.fitted_prior import CLASS_PRIORS, fitted_prior_path

    if not model_prior and run.num_classes:
        fits = class_priors(run)
        if fits:
            k = max(f.components for f in fits.values())
            return (
                f"the fitted class priors: up to {k} Gaussians per class fitted to q(z|x, y) "
                f"of {sum(f.n for f in fits.values()):,} training images "
                f"({run.path / CLASS_PRIORS})"
            )
        return f"the model's prior p(z|y) ({run.config.model.prior}, per class)"
    fitted = None if model_prior else drawn_prior(run)
    if fitted is not None:
        return (
            f"the fitted prior: {fitted.components} Gaussians fitted to the posteriors of "
            f"{fitted.n:,} training images ({fitted_prior_path(run.path)})"
        )
    return f"the model's prior p(z) ({run.config.model.prior})"


def names_a_class(run: LoadedRun, cluster: Cluster) -> bool:
    """Whether ``cluster``'s query is one class name of ``run``'s model."""
    return str(cluster.query).strip().lower() in [name.lower() for name in run.class_names or []]


def cluster_class(run: LoadedRun, cluster: Cluster) -> str:
    """The class a class-conditional model decodes a cluster's draws with: the class its
    query names (``fit-cluster --label sneaker``); any other query needs ``--label``."""
    query = str(cluster.query).strip()
    if names_a_class(run, cluster):
        return query
    raise UsageError(
        f"model '{run.config.model.kind}' is class-conditional and cluster '{query}' names "
        "no class of it: add --label NAME, the class to decode the draws with"
    )


@torch.inference_mode()
def prior_sample(
    run: LoadedRun,
    n: int,
    seed: int = 0,
    temperature: float = 1.0,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` latents (n, D) from the model's prior, seeded: always through ``prior.sample``
    (:func:`vaekit.model.sample_prior`). A conditional prior (the ``cvae``'s p(z|y)) draws
    for the class ids ``labels`` (None: from its marginal)."""
    from vaekit.model import sample_prior

    generator = torch.Generator(device=run.device).manual_seed(seed)
    y = None if labels is None else run.condition(labels, n)
    prior, name = run.model.prior, run.config.model.prior
    z = sample_prior(prior, n, generator, y=y, temperature=temperature, name=name)
    return z.float().cpu().numpy()


def attribute_edit(
    run: LoadedRun,
    image: str | Path | np.ndarray,
    latents: str | Path,
    add: Sequence[str] | str,
    strengths: Sequence[float] = (0.0, 1.0),
) -> Generated:
    """Move an encoded image along the attribute vector mean(add) - mean(not add)
    (from the latent store ``latents``): one image per strength, z = mu + s * v.
    Returns the edited images (strength 0 is the reconstruction)."""
    from vaekit.store import LatentStore

    x = read_model_image(run, image) if not isinstance(image, np.ndarray) else image
    with LatentStore.open(latents) as store:
        check_store_fits(store, run)
    try:
        direction, _, _ = mean_direction(latents, add)
    except DataError as error:  # say which store: --latents has a default
        raise DataError(f"{error} (in the store '{latents}')") from None
    mu, _ = encode_images(run, x[None])
    z = (mu[0][None] + np.asarray(strengths, dtype=np.float32)[:, None] * direction[None]).astype(
        np.float32
    )
    return Generated(decode(run, z), z)


# -- interpolation -----------------------------------------------------------------------------


def check_steps(steps: int) -> None:
    """A UsageError for a negative ``--steps`` (its size is checked against memory apart)."""
    if steps < 0:
        raise UsageError(f"--steps must be >= 0, got {steps}")


def interpolation_weights(steps: int) -> np.ndarray:
    """t for each column: 1 (A) down to 0 (B) over ``steps + 2`` columns."""
    check_steps(steps)
    return 1.0 - np.arange(steps + 2) / (steps + 1)


def lerp(z_a: np.ndarray, z_b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """z_t = t * z_A + (1 - t) * z_B for each t: (T, D)."""
    t = np.asarray(t, dtype=np.float64)[:, None]
    return t * z_a[None] + (1 - t) * z_b[None]


def slerp(z_a: np.ndarray, z_b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation with the same end points (t = 1: z_A, t = 0: z_B): along
    the great circle between the two directions, norms interpolated linearly. Nearly
    parallel vectors fall back to :func:`lerp`."""
    a, b = np.asarray(z_a, dtype=np.float64), np.asarray(z_b, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return lerp(a, b, t)
    cos = np.clip(a @ b / (na * nb), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    t = np.asarray(t, dtype=np.float64)[:, None]
    direction = np.sin(t * omega) * (a / na)[None] + np.sin((1 - t) * omega) * (b / nb)[None]
    return direction / np.sin(omega) * (t * na + (1 - t) * nb)


def interpolate_latents(
    z_a: np.ndarray, z_b: np.ndarray, steps: int = 10, method: str = "lerp"
) -> np.ndarray:
    """(steps + 2, D): z_A, ``steps`` points between, z_B."""
    if method not in METHODS:
        raise UsageError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    t = interpolation_weights(steps)
    walk = lerp(z_a, z_b, t) if method == "lerp" else slerp(z_a, z_b, t)
    walk[0], walk[-1] = z_a, z_b  # exact end points
    return walk.astype(np.float32)


def parse_store_row(spec: str) -> tuple[Path, int] | None:
    """``latents.h5:123`` -> (path, 123), or None when ``spec`` is not of that form."""
    head, sep, tail = str(spec).rpartition(":")
    if not sep or not head or not tail.lstrip("-").isdigit():
        return None
    path = Path(head)
    if path.suffix.lower() not in (".h5", ".hdf5") and not path.is_file():
        return None
    return path, int(tail)


def endpoint_latent(
    run: LoadedRun, spec: str | Path, labels: np.ndarray | None = None
) -> np.ndarray:
    """The latent of an interpolation end: an image file (its posterior mean), a store
    row (``latents.h5:123``), a draw from the model's prior (``prior:SEED``), or a cluster
    (file or name; its mean). ``labels`` (one class id) conditions a class-conditional
    model's posterior and prior. Returns (D,)."""
    from vaekit.imageio import is_image_file

    head, sep, seed = str(spec).partition(":")
    if head == "prior" and sep and seed.isdigit() and not Path(spec).exists():
        return prior_sample(run, 1, int(seed), labels=labels)[0]
    row = parse_store_row(str(spec))
    if row is not None:
        from vaekit.store import LatentStore

        path, index = row
        with LatentStore.open(path) as store:
            if not 0 <= index < store.n:
                raise DataError(
                    f"'{path}' has {store.n} rows; row {index} does not exist "
                    f"(rows are 0 to {store.n - 1})"
                )
            check_store_fits(store, run)
            return store.read([index])[0][0]
    p = Path(spec)
    if p.is_file() and is_image_file(p):
        mu, _ = encode_images(run, read_model_image(run, p)[None], labels)
        return mu[0]
    if p.suffix.lower() in (".png", ".jpg", ".jpeg") and not p.exists():
        raise DataError(f"image '{spec}' does not exist")
    try:
        cluster = load_cluster(str(spec))
    except DataError:
        raise DataError(
            f"'{spec}' is neither an image file, a store row (latents.h5:123), a prior draw "
            "(prior:SEED) nor a cluster (a cluster file or a name under clusters/)"
        ) from None
    check_cluster_fits(cluster, run)
    return cluster.mean.astype(np.float32)


def interpolate(
    run: LoadedRun,
    a: str | Path | np.ndarray,
    b: str | Path | np.ndarray,
    steps: int = 10,
    method: str = "lerp",
    label: str | None = None,
) -> Generated:
    """One walk from A to B: ``steps + 2`` images whose first and last are the
    reconstructions of A and B (decode(mu_A), decode(mu_B)). A and B are latents
    (D,) or what :func:`endpoint_latent` reads. A class-conditional model walks within
    one class, ``label`` (required for one)."""
    check_steps(steps)
    check_images_memory(run, steps + 2, f"a walk of {steps + 2:,} images", "lower --steps")
    labels = walk_labels(run, label, steps + 2)
    end = None if labels is None else labels[:1]
    z_a = a if isinstance(a, np.ndarray) else endpoint_latent(run, a, end)
    z_b = b if isinstance(b, np.ndarray) else endpoint_latent(run, b, end)
    z = interpolate_latents(z_a, z_b, steps, method)
    return Generated(decode(run, z, labels), z, labels)


def walk_labels(run: LoadedRun, label: str | None, n: int) -> np.ndarray | None:
    """The class ids a walk of ``n`` images decodes with: ``label``'s for a
    class-conditional model (which needs one: a walk through the classes in turn shows
    nothing), None for an unconditional one (where ``label`` is refused)."""
    if label is None:
        if run.num_classes:
            raise UsageError(
                f"model '{run.config.model.kind}' is class-conditional: add --label NAME, "
                f"the class to walk in (one of: {', '.join(run.class_names or [])})"
            )
        return None
    return np.full(n, class_id(run, label), dtype=np.int64)


def interpolate_pairs(
    run: LoadedRun,
    latents: str | Path,
    pairs: int,
    steps: int = 10,
    method: str = "lerp",
    seed: int = 0,
    label: str | None = None,
) -> Generated:
    """``pairs`` walks between random (seeded) rows of a latent store, one after the other
    (lay them out with ``ncol = steps + 2``); a class-conditional model decodes them as
    ``label`` (required for one)."""
    from vaekit.store import LatentStore

    if pairs < 1:
        raise UsageError(f"--pairs must be >= 1, got {pairs}")
    check_steps(steps)
    labels = walk_labels(run, label, pairs * (steps + 2))  # before any reading
    check_images_memory(
        run,
        pairs * (steps + 2),
        f"{pairs:,} walks of {steps + 2:,} images",
        "lower --pairs or --steps",
    )
    with LatentStore.open(latents) as store:
        if store.n < 2:
            raise DataError(f"'{latents}' has {store.n} rows; interpolation needs two")
        check_store_fits(store, run)
        rng = np.random.default_rng(seed)
        ends = np.stack([rng.choice(store.n, size=2, replace=False) for _ in range(pairs)])
        mu, _ = store.read(ends.reshape(-1))
    walks = [interpolate_latents(mu[2 * i], mu[2 * i + 1], steps, method) for i in range(pairs)]
    z = np.concatenate(walks)
    return Generated(decode(run, z, labels), z, labels)


# -- reconstruction ----------------------------------------------------------------------------


def reconstruct(
    run: LoadedRun,
    data: str | Path | None = None,
    n: int = 32,
    seed: int = 0,
    split: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of ``data`` (None: the run's training data), read with the run's
    preprocessing, and their reconstructions decode(mu). The images are a seeded
    random choice, in dataset order. Returns ``(originals, reconstructions)``, uint8."""
    if n < 1:
        raise UsageError(f"-n must be >= 1, got {n}")
    dataset = run.load_data(data).require_split(split)
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(dataset), size=min(n, len(dataset)), replace=False))
    images = np.asarray(dataset.images[index])
    labels = None if dataset.labels is None or not run.num_classes else dataset.labels[index]
    mu, _ = encode_images(run, images, labels)
    return images, decode(run, mu, labels)


def side_by_side(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Interleave originals and reconstructions: o0, r0, o1, r1, ... (N * 2, C, H, W)."""
    out = np.empty((2 * len(originals), *originals.shape[1:]), dtype=np.uint8)
    out[0::2], out[1::2] = originals, reconstructions
    return out


# -- saving ------------------------------------------------------------------------------------


def write_grid(
    images: np.ndarray,
    path: str | Path,
    ncol: int | None = None,
    titles: list[str] | None = None,
    group: int = 1,
) -> Path:
    """:func:`vaekit.images.save_grid`: atomic, small images enlarged, columns titled."""
    from vaekit.images import save_grid

    return save_grid(images, path, ncol=ncol, titles=titles, group=group)


def walk_titles(steps: int) -> list[str]:
    """Column titles of an interpolation: its two ends (reconstructions of A and B)."""
    return ["A", *[""] * steps, "B"]


def check_png_output(path: str | Path, overwrite: bool = False) -> Path:
    """A PNG output path: an existing PNG is replaced (pictures are redrawn), any other
    existing file only with ``overwrite``, a link, folder, device or FIFO never."""
    from vaekit.files import check_output_target, is_png

    return check_output_target(path, overwrite, replaceable=is_png)


def check_save_target(target: str | Path, overwrite: bool = False) -> Path:
    """The ``--save`` target, checked before anything is drawn or written: a ``.npy``/``.h5``
    file that exists needs ``overwrite``; a folder must not be a file and, unless
    ``overwrite``, must be empty."""
    from vaekit.files import check_output_target

    target = Path(target)
    if target.suffix.lower() in (".npy", ".h5", ".hdf5"):
        return check_output_target(target, overwrite, flag="--save")
    if target.is_symlink():
        raise DataError(
            f"--save '{target}' is a symbolic link; vaekit does not write through links: "
            "give a plain folder"
        )
    if target.exists() and not target.is_dir():
        raise UsageError(
            f"--save '{target}' is a file; give a folder for PNGs, or a .npy/.h5 file for latents"
        )
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"folder '{target}' is not empty; pass --overwrite or choose another --save folder"
        )
    return target


def save_samples(
    generated: Generated, target: str | Path, overwrite: bool = False
) -> tuple[Path, str]:
    """Save individual results: ``.npy`` (the latents), ``.h5``/``.hdf5`` (latents as ``z``,
    plus ``labels`` for a conditional model), anything else a folder of PNGs
    (``0000.png`` ...). Returns the path and what was written."""
    from vaekit.files import atomic_path

    target = check_save_target(target, overwrite)
    suffix = target.suffix.lower()
    if suffix in (".npy", ".h5", ".hdf5"):
        with atomic_path(target) as tmp:
            if suffix == ".npy":
                with open(tmp, "wb") as fh:
                    np.save(fh, generated.z)
            else:
                import h5py

                with h5py.File(tmp, "w") as f:
                    f.create_dataset("z", data=generated.z)
                    if generated.labels is not None:
                        f.create_dataset("labels", data=generated.labels)
        return target, f"{len(generated.z)} latents"
    from PIL import Image

    target.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(generated.images):
        array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        with atomic_path(target / f"{i:04d}.png") as tmp:
            Image.fromarray(array).save(tmp, format="PNG")
    return target, f"{len(generated.images)} PNG images"
