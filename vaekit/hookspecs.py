"""The vaekit plugin contract: every hook a plugin can implement.

This file and :mod:`vaekit.contract` are what a plugin author needs: the hooks
below say how components are *registered*; ``vaekit.contract`` has one typed
Protocol per family saying what a built component must *offer* (checked when it
is built: a missing member is a one-line error naming the plugin, the component
and the member). ``docs/plugins.md`` walks through both with examples.

A plugin is a module (or any object) with functions decorated by
``@vaekit.hookimpl`` whose names match the hooks below. Third-party packages
expose such a module through the entry-point group ``vaekit`` in their
``pyproject.toml``::

    [project.entry-points.vaekit]
    my_plugin = "my_package.vaekit_plugin"

Registration hooks
------------------
Each component family has one ``register_<family>(register)`` hook. The hook is
called once, the first time vaekit needs that family, with a ``register``
callable: ``register(name, factory)``. vaekit owns naming: a name registered by
two plugins is an error naming both, and an unknown name fails with the list of
registered names and the closest match. ``factory`` may be given by its import
path, ``register("name", "package.module:attribute")``: vaekit imports it when the
component is first used, so ``vaekit --help`` and ``vaekit plugins`` never import
torch; a plugin that registers the object itself imports heavy libraries inside the
hook body, not at module level.

Factories are called with keyword options. Any option a user passes with
``--encoder-opt key=value`` (and the like) must be a keyword parameter of the
factory, otherwise vaekit reports the misspelt option with the accepted ones.
Values are parsed as JSON where they can be (``width=64`` is an int,
``sigma=0.1`` a float, ``sizes=[1,2]`` a list), ``true``/``false``/``none``
become ``True``/``False``/``None``, anything else stays a string.

Errors: raise :class:`vaekit.errors.UsageError` (exit code 2) for a bad option
value and :class:`vaekit.errors.DataError` (exit code 1) for input that cannot be
read; the CLI prints either as one line. Anything else shows a traceback.

Lifecycle hooks
---------------
``vaekit_train_start``, ``vaekit_epoch_end`` and ``vaekit_train_end`` are
called by the training loop for every plugin that implements them; their
return values are ignored. Use them to log, checkpoint elsewhere, or stop early
(raise ``vaekit.train.StopTraining`` from ``vaekit_epoch_end``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # heavy types only for readers and type checkers
    import typer

    from vaekit.contract import RunDirectory

hookspec = pluggy.HookspecMarker("vaekit")

Register = Callable[[str, Any], None]


@hookspec
def register_encoders(register: Register) -> None:
    """Register encoder factories.

    ``register(name, factory)`` where ``factory(input_shape, **options)`` returns a
    ``torch.nn.Module`` that maps a float batch ``x`` of shape ``(B, C, H, W)``
    (values in [0, 1]) to features of shape ``(B, F)``. The module must expose
    ``out_features: int`` (F). The core's posterior head maps the features to
    the diagonal-Gaussian posterior (:class:`vaekit.posterior.DiagonalGaussian`).
    Product: :class:`vaekit.contract.Encoder`.
    """


@hookspec
def register_decoders(register: Register) -> None:
    """Register decoder factories.

    ``register(name, factory)`` where ``factory(latent_dim, output_shape, **options)``
    returns a ``torch.nn.Module`` that maps ``z`` of shape ``(B, latent_dim)`` to
    likelihood parameters of shape ``(B, *output_shape)``. ``output_shape`` is
    ``(C * k, H, W)`` where ``k`` is the likelihood's ``params_per_channel``.
    ``latent_dim`` includes the one-hot classes of class-conditional kinds.
    Product: :class:`vaekit.contract.Decoder`.
    """


@hookspec
def register_likelihoods(register: Register) -> None:
    """Register likelihood factories.

    ``register(name, factory)`` where ``factory(**options)`` returns a
    ``torch.nn.Module`` with:

    - ``params_per_channel: int`` -- how many decoder output channels it needs
      per data channel;
    - ``log_prob(x, params) -> Tensor[B]`` -- log p(x | z) in nats, summed over
      every data dimension, with all normalising constants;
    - ``mean(params) -> Tensor[B, C, H, W]`` -- the mean image, in [0, 1];
    - ``sample(params) -> Tensor[B, C, H, W]`` -- a draw from p(x | z), in [0, 1].

    Product: :class:`vaekit.contract.Likelihood`.
    """


@hookspec
def register_priors(register: Register) -> None:
    """Register prior factories.

    ``register(name, factory)`` where ``factory(latent_dim, **options)`` returns a
    ``torch.nn.Module`` (its parameters, if any, are trained with the model) with:

    - ``log_prob(z) -> Tensor[B]`` -- log p(z);
    - ``sample(n, generator=None) -> Tensor[n, D]`` -- draws on the prior's device;
      every draw vaekit makes from the prior goes through it. Accept a
      ``temperature`` keyword to support ``vaekit sample --temperature``;
    - optional ``kl(posterior) -> Tensor[B, D] | Tensor[B, 1]`` -- the closed-form
      KL(q(z|x) || p(z)) from a :class:`vaekit.posterior.DiagonalGaussian`, per
      latent dimension or (when it does not split) as one column. Without it the
      core uses the Monte Carlo estimate log q(z|x) - log p(z) at the z drawn for
      the reconstruction (also when ``kl`` returns None). ``--free-bits`` floors
      each column at its share;
    - optional ``conditional = True`` -- a class-conditional prior p(z|y): ``log_prob``,
      ``sample`` and ``kl`` then take a keyword ``y`` (one-hot ``Tensor[B, K]``, or None
      for the marginal), which the core passes for class-conditional model kinds.

    Product: :class:`vaekit.contract.Prior`.
    """


@hookspec
def register_kl_schedules(register: Register) -> None:
    """Register KL-weight schedules.

    ``register(name, factory)`` where ``factory(total_steps, **options)`` returns a
    callable ``schedule(step, epoch) -> float``: the weight beta of the KL term
    at optimiser step ``step`` (0-based) of epoch ``epoch``. It must be a pure
    function of its arguments so that a resumed run continues exactly.
    ``total_steps`` is the run's number of optimiser steps. Product:
    :class:`vaekit.contract.KLSchedule`.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset sources.

    ``register(name, source)`` where ``source`` is an object (usually a class)
    with:

    - ``detect(path: pathlib.Path) -> bool`` -- whether ``path`` holds this kind
      of data (used when the user gives no ``--dataset``);
    - ``load(path, **options) -> vaekit.data.ImageDataset`` -- the images as uint8
      ``(N, C, H, W)`` with ids, splits and optional labels/attributes. ``path``
      is ``None`` when the user gives no data (only the default source, the
      embedded digits, is asked for that). If ``load``
      accepts ``image_size``, ``channels`` or ``skip_bad`` keywords, the user's
      ``--image-size``, ``--channels`` and ``--skip-bad`` are passed to it (decode
      at the right size once; :func:`vaekit.imageio.read_image` and
      :func:`vaekit.sources.cache.decode_files` do this for image files); the
      image options are applied afterwards either way. If it accepts a ``splits``
      keyword, a command that takes one split passes the dataset's own splits that
      split needs (a tuple of ``"train"``, ``"val"``, ``"test"``: ``--split val``
      needs the training images too, as the validation ones are carved from them;
      None: all), and the source may leave the images of other splits unread: it
      must return every image of those splits, in the order a whole read gives them
      (images without a split of their own count as ``train``), and may return more;
    - ``detect_priority`` (optional int, default 0) -- higher is tried first
      (built-ins: celeba 30, idx 20, arrays 10, folder 0).

    The source object is checked against :class:`vaekit.contract.DatasetSource`
    when it is registered.
    """


@hookspec
def register_accelerators(register: Register) -> None:
    """Register accelerators (where and how training runs).

    ``register(name, factory)`` where ``factory(**options)`` returns an object with
    ``is_available() -> bool`` (also callable on the factory, for ``--accelerator
    auto``), ``device: torch.device``, ``prepare(model) -> model`` (move to the
    device, memory format, compile), ``autocast()`` (a context manager for mixed
    precision; a null context on CPU) and ``synchronize()`` (wait for queued
    device work); optionally ``memory_format`` (of the training batches) and
    ``grad_scaler()`` (a ``torch.amp.GradScaler`` for fp16, or None). Product:
    :class:`vaekit.contract.Accelerator`.
    """


@hookspec
def register_models(register: Register) -> None:
    """Register model kinds (``vae``; class-conditional ones, ...).

    ``register(name, factory)`` where ``factory(config, components, **options)``
    returns a ``torch.nn.Module`` with ``latent_dim``, ``prior``, ``likelihood``,
    ``posterior(x, y=None)``, ``decode(z, y=None)``, ``elbo(x, y=None, sample=True)``
    and ``forward(x, y=None, beta=1.0, free_bits=0.0) -> vaekit.model.Objective``:
    the kind's training objective, which the training loop minimises. ``config``
    is a :class:`vaekit.config.ModelConfig`; ``components`` a
    :class:`vaekit.model.Components` with the built encoder, decoder, likelihood
    and prior; ``options`` come from ``--model-opt KEY=VALUE``. Subclass
    :class:`vaekit.model.VAE` and override ``forward`` to change the objective.

    The factory declares ``needs_labels = True`` (a class attribute) when the kind
    conditions on classes: the core then sets ``config.num_classes`` from the
    data and passes one-hot ``y``; vaekit never decides that by the kind's name.
    Product: :class:`vaekit.contract.ModelKind`.
    """


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add commands to the ``vaekit`` command line.

    Called once when the CLI starts, with the root ``typer.Typer`` app. Add
    commands with ``@cli.command(rich_help_panel="Plugins")``. Keep imports of
    heavy libraries inside the command function.
    """


@hookspec
def vaekit_train_start(run: RunDirectory, config: dict[str, Any]) -> None:
    """Called once before the first training step (also on resume).

    ``run`` is the run directory (:class:`vaekit.runs.Run`: ``path``, ``name``,
    ``file(name)``, ``config_path``, ``weights_path``, ``metrics_path``);
    ``config`` the full configuration as written to ``config.json`` (a dict).
    """


@hookspec
def vaekit_epoch_end(run: RunDirectory, epoch: int, metrics: dict[str, float]) -> None:
    """Called after each epoch, once its checkpoint is written.

    ``metrics`` holds the epoch's mean training loss, reconstruction NLL, KL,
    beta, throughput and, when there is a validation split, ``val_loss``.
    """


@hookspec
def vaekit_train_end(run: RunDirectory, metrics: dict[str, float]) -> None:
    """Called once after the last epoch, when the final model is saved."""
