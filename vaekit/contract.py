"""What each family's component must be: one typed Protocol per family, checked when built.

The hooks in :mod:`vaekit.hookspecs` register *factories*; this module says what
a factory's *product* must offer. Every member listed here is called by vaekit's
core (the docstring says where), and nothing the core calls is missing from it.
When a component is built, :func:`check_component` verifies the members exist and
raises a one-line :class:`~vaekit.errors.ContractError` naming the plugin, the
component and the member otherwise.

Members marked *optional* are used when present:

- ``Prior.kl(posterior)``: a closed-form KL. Without it (or when it returns None)
  the core estimates KL(q || p) by Monte Carlo, log q(z|x) - log p(z) at the z used
  for the reconstruction.
- ``Prior.conditional``: True for a class-conditional prior p(z|y); ``log_prob``,
  ``sample`` and ``kl`` then take a keyword ``y`` (one-hot ``(B, K)``, or None for the
  marginal), which the core passes for class-conditional kinds (the ELBO, the IWAE
  bound, evaluation, ``samples.png``, ``vaekit sample --label``).
- ``ModelKind.needs_labels``: read from the registered factory (before building),
  default False.
- ``DatasetSource.detect_priority``: default 0.
- ``ModelKind.parameter_groups()``: ``{"model": [...], "<extra>": [...]}`` for kinds with
  extra networks (a discriminator) trained by their own loss: the core gives each group
  its own Adam optimiser (checkpointed and resumed), and minimises
  ``Objective.extra["<extra>"]`` over that group's parameters only.

- ``Accelerator.memory_format``: the ``torch.memory_format`` training batches are moved
  to the device in (``torch.channels_last`` with channels-last weights); default
  contiguous.
- ``Accelerator.grad_scaler()``: a ``torch.amp.GradScaler`` (fp16 autocast) or None,
  called once when training is set up; the core scales each loss, unscales before
  clipping, saves the scaler's state in the checkpoint and restores it on ``--resume``
  and roll-back. Default: none.

Importing this module is cheap: torch types appear only for type checkers.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vaekit.errors import ContractError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from vaekit.dataset import ImageDataset
    from vaekit.objective import ELBOTerms, Objective
    from vaekit.posterior import DiagonalGaussian


class RunDirectory(Protocol):
    """What the lifecycle hooks receive as ``run``: a run directory (vaekit passes its
    :class:`vaekit.runs.Run`, which offers more; a plugin may rely on these)."""

    path: Path

    @property
    def name(self) -> str:
        """The run's name: its folder's name."""
        ...


#: The component families a plugin can add to, as registries are named.
FAMILIES: tuple[str, ...] = (
    "encoders",
    "decoders",
    "likelihoods",
    "priors",
    "kl_schedules",
    "datasets",
    "accelerators",
    "models",
)

#: The word for one member of each family, used in messages.
SINGULAR: dict[str, str] = {
    "encoders": "encoder",
    "decoders": "decoder",
    "likelihoods": "likelihood",
    "priors": "prior",
    "kl_schedules": "KL schedule",
    "datasets": "dataset",
    "accelerators": "accelerator",
    "models": "model",
}


@runtime_checkable
class Encoder(Protocol):
    """``factory(input_shape, **options)`` -> an ``nn.Module``: x ``(B, C, H, W)`` floats in
    [0, 1] -> features ``(B, out_features)``. The core's posterior head maps the features
    (plus a one-hot class for conditional kinds) to the diagonal-Gaussian posterior."""

    out_features: int  # read by the model to size the posterior head

    def __call__(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class Decoder(Protocol):
    """``factory(latent_dim, output_shape, **options)`` -> an ``nn.Module``: z
    ``(B, latent_dim)`` -> likelihood parameters ``(B, *output_shape)``, where
    ``output_shape = (C * params_per_channel, H, W)``."""

    def __call__(self, z: Tensor) -> Tensor: ...


@runtime_checkable
class Likelihood(Protocol):
    """``factory(**options)`` -> an ``nn.Module`` scoring data under decoder parameters."""

    #: decoder output channels per data channel (read when the decoder is built)
    params_per_channel: int

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x|z) ``(B,)`` in nats, summed over every data dimension, with all
        normalising constants (the ELBO, the IWAE bound, evaluation)."""
        ...

    def mean(self, params: Tensor) -> Tensor:
        """The mean image ``(B, C, H, W)`` in [0, 1] (grids, ``sample``, ``interpolate``)."""
        ...

    def sample(self, params: Tensor) -> Tensor:
        """A draw from p(x|z), ``(B, C, H, W)`` in [0, 1] (``vaekit sample --pixels sample``)."""
        ...


@runtime_checkable
class Prior(Protocol):
    """``factory(latent_dim, **options)`` -> an ``nn.Module`` (may hold learned parameters,
    trained with the model)."""

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) ``(B,)`` (the Monte Carlo KL, the IWAE bound)."""
        ...

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws ``(n, latent_dim)`` on the prior's device: the only way vaekit draws
        from the prior (training grids, ``sample --prior``, evaluation). May accept a
        ``temperature`` keyword, which ``vaekit sample --temperature`` then passes."""
        ...


@runtime_checkable
class ClosedFormKL(Protocol):
    """Optional for priors: ``kl(posterior)`` -> KL(q(z|x) || p(z)) in closed form, either
    ``(B, D)`` per latent dimension or ``(B, 1)`` when it does not split by dimension."""

    def kl(self, posterior: DiagonalGaussian) -> Tensor: ...


@runtime_checkable
class KLSchedule(Protocol):
    """``factory(total_steps, **options)`` -> a pure function of the step: beta >= 0."""

    def __call__(self, step: int, epoch: int) -> float: ...


@runtime_checkable
class DatasetSource(Protocol):
    """The registered object itself (often a class with static methods)."""

    def detect(self, path: Path) -> bool:
        """Whether ``path`` holds this kind of data (when the user gives no --dataset)."""
        ...

    def load(self, path: Path | None, **options: Any) -> ImageDataset:
        """The images as a :class:`vaekit.data.ImageDataset` (``path`` is None for sources
        that need none)."""
        ...


@runtime_checkable
class Accelerator(Protocol):
    """``factory(**options)`` -> where and how training and encoding run."""

    device: torch.device  # batches are moved here

    def is_available(self) -> bool:
        """Whether this machine can use it (also called on the factory, for ``auto``)."""
        ...

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to the device (memory format, compile); returns the model to run."""
        ...

    def autocast(self) -> AbstractContextManager[Any]:
        """A context manager around each forward pass (mixed precision, or a null context)."""
        ...

    def synchronize(self) -> None:
        """Wait for queued device work (before timing an epoch)."""
        ...


@runtime_checkable
class ModelKind(Protocol):
    """``factory(config, components, **options)`` -> an ``nn.Module``; ``config`` is a
    :class:`vaekit.config.ModelConfig`, ``components`` a :class:`vaekit.model.Components`.
    Subclassing :class:`vaekit.model.VAE` and overriding ``forward`` is the short way to a
    new objective. The factory may declare ``needs_labels = True`` (class-conditional:
    ``config.num_classes`` is then the number of classes and ``y`` a one-hot)."""

    latent_dim: int
    prior: Any  # a Prior (sampled for grids and ``sample --prior``)
    likelihood: Any  # a Likelihood (mean images, evaluation)

    def posterior(self, x: Tensor, y: Tensor | None = None) -> DiagonalGaussian:
        """q(z|x[, y]) (encode, generate, evaluation)."""
        ...

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Likelihood parameters for latents ``z`` (generation, evaluation)."""
        ...

    def elbo(self, x: Tensor, y: Tensor | None = None, sample: bool = True) -> ELBOTerms:
        """The standard ELBO's terms per sample (validation, evaluation)."""
        ...

    def forward(
        self, x: Tensor, y: Tensor | None = None, beta: float = 1.0, free_bits: float = 0.0
    ) -> Objective:
        """The kind's training objective for one batch (the training loop minimises
        ``.loss``); KL weight ``beta`` from the schedule, ``free_bits`` from the user."""
        ...


PROTOCOLS: dict[str, type] = {
    "encoders": Encoder,
    "decoders": Decoder,
    "likelihoods": Likelihood,
    "priors": Prior,
    "kl_schedules": KLSchedule,
    "datasets": DatasetSource,
    "accelerators": Accelerator,
    "models": ModelKind,
}


def members(protocol: type) -> list[str]:
    """The members a protocol requires (attributes and methods), in declaration order."""
    names: list[str] = list(getattr(protocol, "__annotations__", {}))
    for name, value in vars(protocol).items():
        if callable(value) and (not name.startswith("_") or name == "__call__"):
            names.append(name)
    return [n for n in dict.fromkeys(names)]


def missing_members(family: str, product: Any) -> list[str]:
    """The members of ``family``'s protocol that ``product`` lacks."""
    missing = []
    for name in members(PROTOCOLS[family]):
        if name == "__call__":
            if not callable(product):
                missing.append(name)
        elif not hasattr(product, name):
            missing.append(name)
    return missing


def check_component(family: str, name: str, plugin: str, product: Any) -> Any:
    """Return ``product`` if it meets ``family``'s protocol; else raise :class:`ContractError`
    naming the plugin, the component and the missing members."""
    missing = missing_members(family, product)
    if missing:
        what = (
            "is not callable"
            if missing == ["__call__"]
            else ("lacks " + ", ".join(f"'{m}'" for m in missing if m != "__call__"))
        )
        raise ContractError(
            f"{SINGULAR[family]} '{name}' from plugin '{plugin}' breaks the plugin contract: "
            f"it {what} (see vaekit.contract.{PROTOCOLS[family].__name__}); "
            "ask the plugin's author to fix it or choose another component"
        )
    return product
