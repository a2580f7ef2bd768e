"""The training loop: set-up, resume, epochs, checkpoints.

Read :func:`train` top to bottom: :func:`set_up` builds (or restores) everything a
run needs, :func:`train_epoch` runs one epoch of optimiser steps,
:func:`save_epoch` writes weights, checkpoint and metrics atomically, and
:func:`finish` writes the grids.

Faults: a step whose loss or gradient is not finite is skipped on the device
(fused Adam's ``found_inf``: no host sync) and counted. Under fp16 autocast
with a gradient scaler, a step with a finite loss whose scaled gradients
overflowed is the scaler's business: skipped, its scale halved, counted apart
as an ``overflow_steps`` (not toward the roll-back limit) while the scale is at
least 1; below 1 the gradients overflow unscaled and the step counts as
skipped. More than
``max_skipped_steps`` in one epoch, or an epoch that ends with non-finite
weights or validation loss, rolls the run back to its last good state (the
last checkpoint, or the initial weights) with the learning rate halved; after
``max_rollbacks`` roll-backs training stops with a message that says what to
change. Nothing non-finite is ever written to the run directory. With
``patience``, training stops when the validation -ELBO has not improved for
that many epochs, and ``model.safetensors`` holds the best epoch's weights.

The objective is the model kind's own (``model(x, y, beta=..., free_bits=...)``);
the core never asks which kind it is.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains a
``DistributedDataParallel`` copy on its own disjoint share of each global batch
(``batch_size`` per process; a kind's extra parameter groups share the one
wrapper, each group's loss back-propagated on its own); rank 0 alone writes
files, calls the lifecycle hooks and reports, and the processes agree on every
decision (validation loss, roll-back, stop) through rank 0.

The hot loop holds the data as one uint8 tensor, converts each batch on the
device, and reads values back to the host (``.tolist()``) only every
``LOG_EVERY`` steps; there is no per-sample Python.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vaekit.config import ModelConfig, RunConfig, TrainConfig
from vaekit.data import DeviceBatches, ImageDataset, load_training_data
from vaekit.devices import batch_memory_format, choose_accelerator, resolve_accelerator_name
from vaekit.distributed import DistContext
from vaekit.errors import ContractError, DataError, OutputExistsError, UsageError, VaekitError
from vaekit.files import file_sha256
from vaekit.images import save_grid, to_uint8
from vaekit.limits import check_model_memory
from vaekit.model import (
    MAIN_GROUP,
    Objective,
    build_model,
    mean_image,
    needs_labels,
    one_hot_labels,
    parameter_groups,
    sample_prior,
)
from vaekit.options import check_options
from vaekit.plugins import SINGULAR, get_plugin_host
from vaekit.report import read_steps
from vaekit.runs import (
    LATEST,
    LOCK,
    RECONSTRUCTIONS,
    SAMPLES,
    Run,
    check_latest_link,
    check_run_name,
    point_latest,
    resolve_run,
    unwrap,
)
from vaekit.version import __version__

LOG_EVERY = 10


class Reporter(Protocol):
    """Receives progress from :func:`train` (the CLI shows it with rich)."""

    def start(self, total_steps: int, done_steps: int, run: Run) -> None: ...
    def update(self, step: int, metrics: dict[str, float]) -> None: ...
    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...
    def end(self, history: list[dict[str, Any]]) -> None: ...

    # optional: ``banner(lines)`` before the first step, the run's set-up in words


@dataclass
class TrainResult:
    """What :func:`train` leaves behind: the run directory, its per-epoch metrics, and the
    trained model (eval mode; with ``patience``, the last epoch's, not the saved best)."""

    run: Run
    history: list[dict[str, Any]]
    model: Any = None
    #: why training ended, in words ("finished 30 epochs", "stopped early at epoch 17 …")
    stopped: str = ""
    #: the epoch whose weights model.safetensors holds (the best one, with patience)
    best_epoch: int = 0
    #: wall-clock seconds of this call
    seconds: float = 0.0

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


class StopTraining(Exception):  # noqa: N818 -- a signal, not an error
    """Raise from ``vaekit_epoch_end`` to end training after that epoch, as if it were the last."""


class Diverged(Exception):  # noqa: N818 -- a signal, handled by rolling back
    """An epoch went non-finite beyond what skipping steps can absorb."""


@dataclass
class Session:
    """Everything one training run holds while it trains."""

    config: TrainConfig
    run_config: RunConfig
    run: Run
    accelerator: Any
    model: torch.nn.Module  # what runs the steps (possibly compiled)
    groups: dict[str, list[torch.nn.Parameter]]  # parameter groups, "model" first
    optimizers: dict[str, torch.optim.Optimizer]  # one per group
    scaler: torch.amp.GradScaler | None  # fp16 autocast's gradient scaler, else None
    schedule: Any
    schedule_steps: int
    batches: DeviceBatches
    val_batches: DeviceBatches | None
    grid_data: ImageDataset
    resumed: bool
    dist: DistContext
    start_epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    good_state: dict[str, Any] = field(default_factory=dict)  # where a roll-back returns to
    rollbacks: int = 0
    best_val: float = math.inf
    best_epoch: int = 0
    step_log: list[dict[str, Any]] = field(default_factory=list)  # steps.jsonl's rows
    stopped: str = ""  # why the epochs ended (see TrainResult.stopped)

    @property
    def raw_model(self) -> torch.nn.Module:
        """The plain module under compile/DDP wrappers (what is saved)."""
        return unwrap(self.model)

    @property
    def num_classes(self) -> int:
        return self.run_config.model.num_classes

    @property
    def final_metrics(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def steps_per_epoch(self) -> int:
        return self.batches.num_batches(self.config.batch_size, world_size=self.dist.world_size)

    @property
    def lead(self) -> bool:
        """Whether this process writes files and reports (rank 0)."""
        return self.dist.is_lead


def train(
    config: TrainConfig, resume: bool = False, reporter: Reporter | None = None
) -> TrainResult:
    """Train a model as ``config`` says and leave a loadable run directory.

    With ``resume=True`` the run ``config.runs_dir/config.name`` (default: the
    latest) continues from its last checkpoint with its saved settings: weights,
    optimiser, step, epoch, KL schedule and RNG state are restored. Only
    ``config.epochs`` is taken from ``config`` (0 keeps the saved count).
    """
    started = time.perf_counter()
    session = set_up(config, resume)
    try:
        run_epochs(session, reporter if session.lead else None)
        session.dist.barrier()  # every rank leaves once rank 0 has written the last files
    except KeyboardInterrupt:
        saved = len(session.history)
        where = f"epoch {saved} is saved" if saved else "no epoch was saved yet"
        how = "--resume " if saved else ""
        raise KeyboardInterrupt(
            f"{where}: `vaekit train {how}--name {session.run.name}` "
            f"{'continues' if saved else 'starts'} it"
        ) from None
    finally:
        # DDP's reducer holds the process group: dropped here, before the group is left,
        # it is never the one whose release tears the group down (see DistContext.stop)
        session.model = session.raw_model
        session.dist.stop()
        session.run.unlock()  # the kernel would drop it at exit; an API caller goes on
    return TrainResult(
        session.run,
        session.history,
        session.raw_model.eval(),
        stopped=session.stopped,
        best_epoch=saved_weights_epoch(session),
        seconds=time.perf_counter() - started,
    )


def saved_weights_epoch(session: Session) -> int:
    """The epoch model.safetensors holds: the best with ``patience``, else the last."""
    if session.config.patience is not None and session.best_epoch:
        return session.best_epoch
    return int(session.history[-1]["epoch"]) if session.history else 0


def session_banner(session: Session) -> list[str]:
    """What this run trains on, with what, where: the lines the CLI shows before training."""
    data = session.run_config.data
    model = session.run_config.model
    shape = "×".join(str(s) for s in model.input_shape or ())
    val = len(session.val_batches) if session.val_batches is not None else 0
    params = sum(p.numel() for p in session.raw_model.parameters())
    device = session.accelerator.device
    dtype = getattr(session.accelerator, "dtype", None)
    precision = "float32" if dtype is None else str(dtype).replace("torch.", "")
    processes = (
        f", {session.dist.world_size} processes (torchrun)" if session.dist.world_size > 1 else ""
    )
    decoder = model.decoder or model.encoder
    state = f"resumed after epoch {session.start_epoch}" if session.resumed else "a new run"
    return [
        f"data    {data.get('source', '?')} at {data.get('location', '?')}: "
        f"{len(session.batches):,} training and {val:,} validation images of {shape}",
        f"model   {model.kind}: encoder {model.encoder}, decoder {decoder}, likelihood "
        f"{model.likelihood}, prior {model.prior}, {model.latent_dim} latents; "
        f"{params:,} parameters",
        f"device  {device}, {precision}, {torch.get_num_threads()} threads{processes}",
        f"run     {session.run.path} ({state}), epochs {session.start_epoch + 1} to "
        f"{session.config.epochs}, {session.steps_per_epoch} steps each",
    ]


def run_epochs(session: Session, reporter: Reporter | None) -> None:
    """The epochs of a set-up session, with its hooks, reports and faults."""
    host = get_plugin_host()
    if session.lead:
        host.hook.vaekit_train_start(run=session.run, config=session.run_config.to_dict())
    if reporter and hasattr(reporter, "banner"):
        reporter.banner(session_banner(session))
    if reporter:
        reporter.start(session.steps_per_epoch * session.config.epochs, session.step, session.run)
    epoch = session.start_epoch
    epochs = session.config.epochs
    session.stopped = f"finished {epochs} epoch{'s' if epochs != 1 else ''}"
    while epoch < session.config.epochs:
        try:
            metrics = train_epoch(session, epoch, reporter)
            if session.val_batches is not None:
                val = validation_neg_elbo(session) if session.lead else None
                metrics["val_loss"] = session.dist.from_lead(val)
            check_epoch(session, metrics)
        except Diverged as why:
            epoch = roll_back(session, str(why))
            continue
        save_epoch(session, metrics)
        stop = False
        if session.lead:
            if reporter:
                reporter.epoch_end(epoch + 1, metrics)
            try:
                host.hook.vaekit_epoch_end(run=session.run, epoch=epoch + 1, metrics=metrics)
            except StopTraining:
                stop = True
        if session.dist.from_lead(stop):
            if epoch + 1 < session.config.epochs:
                session.stopped = f"stopped after epoch {epoch + 1} by a plugin (StopTraining)"
            break
        if patience_exhausted(session, epoch + 1):
            if epoch + 1 < session.config.epochs:
                session.stopped = (
                    f"stopped early after epoch {epoch + 1} of {session.config.epochs}: the "
                    f"validation −ELBO has not improved for {session.config.patience} epochs; "
                    f"the saved weights are epoch {session.best_epoch}'s, the best "
                    f"({session.best_val:.2f})"
                )
            break
        epoch += 1
    if session.lead:
        finish(session)
        host.hook.vaekit_train_end(run=session.run, metrics=session.final_metrics)
    if reporter:
        reporter.end(session.history)


# -- set-up --------------------------------------------------------------------------------


def validate_components(config: TrainConfig) -> None:
    """Fail early, before any data is read, on unknown component names or bad numbers."""
    config.validate()
    host = get_plugin_host()
    model = config.model
    # family, name, options, and how many positional arguments its factory takes first
    components = [
        ("models", model.kind, model.kind_options, 2),
        ("encoders", model.encoder, model.encoder_options, 1),
        ("decoders", model.decoder or model.encoder, model.decoder_options, 2),
        ("likelihoods", model.likelihood, model.likelihood_options, 0),
        ("priors", model.prior, model.prior_options, 1),
        ("kl_schedules", config.kl_schedule, config.kl_schedule_options, 1),
    ]
    if config.accelerator != "auto":
        components.append(("accelerators", config.accelerator, config.accelerator_options, 0))
    for family, name, options, skip in components:
        factory = host.get(family, name).factory
        check_options(SINGULAR[family], name, factory, options, skip=skip)
    if config.accelerator != "auto":  # before any data is read or model built
        factory = host.get("accelerators", config.accelerator).factory
        if hasattr(factory, "is_available") and not factory.is_available():
            from vaekit.builtin.accelerators import not_available

            raise not_available(config.accelerator)
    accelerator_options = config.accelerator_options or {}
    if resolve_accelerator_name(config.accelerator) == "cpu" and accelerator_options.get("fp16"):
        warnings.warn(
            "fp16 on the CPU is emulated: several times slower than float32, and its "
            "gradients overflow often (those steps are skipped); bf16=true is the CPU's "
            "half precision",
            TrainingWarning,
            stacklevel=2,
        )
    if config.name is not None:
        check_run_name(config.name)
    check_latest_link(config.runs_dir)
    from vaekit.builtin.loggers import check_loggers

    check_loggers(config.loggers)


def resolve_model_config(config: ModelConfig, data: ImageDataset) -> ModelConfig:
    """``config`` with what the data decides (the input shape, and the classes for a kind
    that declares ``needs_labels``) and every component's options completed with the
    defaults it is built with (:func:`with_option_defaults`)."""
    num_classes = len(data.class_names or []) if needs_labels(config.kind) else 0
    return replace(
        with_option_defaults(config), input_shape=data.image_shape, num_classes=num_classes
    )


def with_option_defaults(config: ModelConfig) -> ModelConfig:
    """``config`` with each component's options completed by its factory's plain defaults
    (:func:`vaekit.options.with_defaults`): what config.json records, so that a later
    change of a default does not change how a run is rebuilt."""
    from vaekit.options import with_defaults
    from vaekit.plugins import factory

    # each family, and the positional arguments its factory takes before the options
    families = {
        "kind": ("models", config.kind, 2),
        "encoder": ("encoders", config.encoder, 1),
        "decoder": ("decoders", config.decoder or config.encoder, 2),
        "likelihood": ("likelihoods", config.likelihood, 0),
        "prior": ("priors", config.prior, 1),
    }
    options = {
        f"{key}_options": with_defaults(
            factory(family, name), getattr(config, f"{key}_options"), skip=skip
        )
        for key, (family, name, skip) in families.items()
    }
    return replace(config, **options)


def resolved_config(config: TrainConfig) -> TrainConfig:
    """``config`` as a run trains it, before any data is read: every component's options
    completed with their factories' defaults, the fitted prior's size decided, and the
    data path made absolute (what ``--print-config`` prints and config.toml holds)."""
    from vaekit.options import with_defaults
    from vaekit.plugins import factory

    resolved = copy.deepcopy(config)
    resolved.model = with_option_defaults(resolved.model)
    resolved.kl_schedule_options = with_defaults(
        factory("kl_schedules", resolved.kl_schedule), resolved.kl_schedule_options, skip=1
    )
    if resolved.accelerator != "auto":
        resolved.accelerator_options = with_defaults(
            factory("accelerators", resolved.accelerator), resolved.accelerator_options
        )
    resolved.fit_prior = resolved.fit_prior_components
    if resolved.data is not None and Path(resolved.data).exists():
        resolved.data = str(Path(resolved.data).resolve())
    return resolved


def config_from_file(path: str | Path, given: dict[str, Any]) -> TrainConfig:
    """The training config of config file ``path`` overridden by the command line's
    ``given`` settings (:func:`vaekit.config_file.merge_settings`). The file's own
    settings are checked first, so a wrong component or option in it is one line that
    names the file, before anything is read or written."""
    from vaekit.config_file import merge_settings, read_config_file

    from_file = read_config_file(path)
    try:
        with warnings.catch_warnings():  # the merged config warns, once
            warnings.simplefilter("ignore")
            validate_components(TrainConfig.build(**from_file))
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return TrainConfig.build(**merge_settings(from_file, given))


def new_run(config: TrainConfig) -> Run:
    """Create ``runs_dir/<name>`` (a timestamped name when none is given)."""
    name = config.name if config.name is None else check_run_name(config.name)
    if name is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{config.model.encoder}"
        name, n = stamp, 1
        while (Path(config.runs_dir) / name).exists():  # two runs started in one second
            n += 1
            name = f"{stamp}-{n}"
    run = Run(Path(config.runs_dir) / name)
    run.lock()  # first own the directory, then look in it: two runs never share one
    try:
        run.recover()
        leftovers = [p for p in run.path.iterdir() if p.name != LOCK]
        unfinished = run.config_path.is_file() and not run.has_saved_epoch()
        if leftovers and not unfinished:
            raise OutputExistsError(
                f"run directory '{run.path}' already exists; pass --resume to continue it "
                "or --name to start another"
            )
        # a run that stopped before saving an epoch (killed, interrupted, diverged) left
        # only its config and what hooks wrote at its start: start it afresh
        for leftover in leftovers:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    except BaseException:
        run.unlock()
        raise
    return run


#: What ``--resume`` takes from the command line; every other setting is the run's own.
RESUME_OPTIONS = frozenset({"epochs", "name", "runs_dir"})


def changed_settings(saved: TrainConfig, settings: dict[str, Any]) -> list[str]:
    """The keys of flat ``settings`` (as :meth:`TrainConfig.build` takes them) other than
    :data:`RESUME_OPTIONS` whose values differ from the ``saved`` run's."""
    given = {k: v for k, v in settings.items() if k not in RESUME_OPTIONS}
    if not given:
        return []
    asked = TrainConfig.build(**given)
    if asked.data is not None and Path(asked.data).exists():
        asked.data = str(Path(asked.data).resolve())  # saved absolute, as training does

    # options are compared with their defaults filled in, as config.json records them
    pairs = [(asked, with_option_defaults(asked.model)), (saved, with_option_defaults(saved.model))]

    def differs(key: str) -> bool:
        (a, a_model), (s, s_model) = pairs
        if hasattr(a_model, key):
            return getattr(a_model, key) != getattr(s_model, key)
        return getattr(a, key) != getattr(s, key)

    return sorted(k for k in given if differs(k))


def load_resume_state(run: Run) -> dict[str, Any]:
    """The checkpoint ``--resume`` continues from; a run that never saved an epoch has none
    and is started again under its name instead."""
    if not run.checkpoint_path.is_file():
        raise DataError(
            f"run '{run.path}' has no checkpoint: it stopped before saving its first epoch; "
            f"start it again with `vaekit train --name {run.name}` (without --resume)"
        )
    try:
        state = run.load_checkpoint()
        int(state["epoch"]), int(state["step"])  # noqa: B018 - a damaged one fails here
    except VaekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a bad file
        import pickle

        why = (
            "it holds pickled objects other than tensors, which vaekit never loads"
            if isinstance(exc, pickle.UnpicklingError)
            else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        raise DataError(
            f"run '{run.path}': {run.checkpoint_path.name} is damaged ({why}); it cannot "
            "resume: start a new run (its model.safetensors still loads)"
        ) from None
    return state


def check_resume_epochs(epochs: int, done: int, run: Run) -> int:
    """``--epochs`` for a resumed run: 0 keeps the run's count; otherwise a total of at
    least the epochs already trained."""
    if epochs < 0:
        raise UsageError(f"--epochs must be >= 1, got {epochs}")
    if 0 < epochs < done:
        raise UsageError(
            f"run '{run.path}' has already trained {done} epochs; --epochs is the new total, "
            f"so give at least {done} (or leave it out to keep the run's own)"
        )
    return epochs


def find_run_to_resume(config: TrainConfig) -> Run:
    """The run ``--resume`` continues: ``--name`` (checked) or ``latest``."""
    name = LATEST if config.name is None else check_run_name(config.name)
    path = Path(config.runs_dir) / name
    if not path.exists():
        hint = (
            f"start it with `vaekit train --name {name}` (without --resume)"
            if config.name
            else "train one first (without --resume)"
        )
        raise DataError(f"no run '{path}' to resume; {hint}")
    return resolve_run(path)


def set_up(config: TrainConfig, resume: bool) -> Session:
    """Everything a run needs: for a new run from ``config``; when resuming, from the
    run's saved config and checkpoint (only ``config.epochs`` is taken from ``config``).
    The writing process (rank 0) locks the run directory (:meth:`Run.lock`) from the
    moment it is chosen; the lock is released here if set-up fails, else by :func:`train`."""
    claimed: list[Run] = []
    try:
        return _set_up(config, resume, claimed)
    except BaseException:
        for run in claimed:
            run.unlock()
        raise


def _set_up(config: TrainConfig, resume: bool, claimed: list[Run]) -> Session:
    state: dict[str, Any] | None = None
    started_epochs = config.epochs
    if resume:
        run = find_run_to_resume(config)
        if os.environ.get("RANK", "0") == "0":  # rank 0 writes; under torchrun it alone owns
            run.lock()
            claimed.append(run)
            run.recover()  # an epoch commit a kill interrupted is finished first
        state = load_resume_state(run)
        saved = run.read_config()
        epochs = check_resume_epochs(config.epochs, int(state["epoch"]), run)
        config = saved.train
        started_epochs = config.epochs
        config.epochs = epochs or config.epochs
    else:
        validate_components(config)
        # every default recorded, the data path absolute: later commands run from anywhere
        config = resolved_config(config)
        run = None

    torch.manual_seed(config.seed)
    data = load_training_data(config)
    train_data, val_data = data.select_split("train"), data.select_split("val")
    if len(train_data) == 0:
        raise VaekitError("the training split is empty; lower --val-fraction or add images")
    config.model = resolve_model_config(config.model, data)
    check_model_memory(
        config.model,
        config.batch_size,
        training=True,
        fix="lower --batch-size or --image-size, or the encoder/decoder width",
    )
    accelerator, dist = start_processes(config)
    model = build_model(config.model)
    if run is None:
        run = lead_creates_run(config, dist)
        claimed.append(run)

    use_labels = config.model.num_classes > 0  # a plain VAE never moves labels per step
    layout = batch_memory_format(accelerator)
    batches = DeviceBatches(
        train_data.images, accelerator.device, train_data.labels if use_labels else None, layout
    )
    val_batches = None
    if len(val_data):
        val_labels = val_data.labels if use_labels else None
        val_batches = DeviceBatches(val_data.images, accelerator.device, val_labels, layout)
    steps_per_epoch = batches.num_batches(config.batch_size)
    # a resumed run keeps the schedule it started with, even when --epochs grows
    schedule_steps = steps_per_epoch * config.epochs
    if state is not None:  # checkpoints of vaekit 0.1.0 before this field: the run's own total
        schedule_steps = int(state.get("schedule_steps", steps_per_epoch * started_epochs))
    schedule = get_plugin_host().create(
        "kl_schedules", config.kl_schedule, schedule_steps, **config.kl_schedule_options
    )

    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"run '{run.path}': {run.checkpoint_path.name} does not fit the model its "
                f"config.json describes ({first}); it cannot resume: start a new run"
            ) from None
    model = accelerator.prepare(model)
    groups = parameter_groups(unwrap(model))
    if dist.world_size > 1:
        # one wrapper for every group: the reducer averages each gradient once it is ready,
        # whichever of the groups' backward passes (see optimise) produced it
        device_ids = [accelerator.device.index] if accelerator.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    # fused Adam skips a step on the device when told found_inf (no host sync per step)
    optimizers = {
        name: torch.optim.Adam(params, lr=config.lr, fused=True) for name, params in groups.items()
    }
    scaler = grad_scaler(accelerator)
    run_config = RunConfig(
        train=config,
        data=data.describe(),
        vaekit_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        plugins=plugin_versions(),
    )
    session = Session(
        config=config,
        run_config=run_config,
        run=run,
        accelerator=accelerator,
        model=model,
        groups=groups,
        optimizers=optimizers,
        scaler=scaler,
        schedule=schedule,
        schedule_steps=schedule_steps,
        batches=batches,
        val_batches=val_batches,
        grid_data=val_data if len(val_data) else train_data,
        resumed=resume,
        dist=dist,
    )
    if state is not None:
        restore(session, state)
    session.good_state = snapshot(session)
    if dist.is_lead:
        run.write_config(run_config)
    return session


def grad_scaler(accelerator: Any) -> torch.amp.GradScaler | None:
    """The accelerator's gradient scaler (optional ``grad_scaler()``; fp16 autocast); a
    disabled one is none."""
    make = getattr(accelerator, "grad_scaler", None)
    scaler = None if make is None else make()
    return scaler if scaler is not None and scaler.is_enabled() else None


def start_processes(config: TrainConfig) -> tuple[Any, DistContext]:
    """The accelerator, and this process's place under torchrun (one GPU per process:
    ``cuda`` takes device ``LOCAL_RANK``; ``nccl`` between GPUs, ``gloo`` on CPU)."""
    name = resolve_accelerator_name(config.accelerator)
    options = dict(config.accelerator_options)
    if name == "cuda":
        options.setdefault("index", DistContext.local_rank_from_env())
    accelerator = choose_accelerator(name, options)
    dist = DistContext.start("nccl" if accelerator.device.type == "cuda" else "gloo")
    return accelerator, dist


def lead_creates_run(config: TrainConfig, dist: DistContext) -> Run:
    """Rank 0 creates the run directory; every process gets its path (or rank 0's error)."""
    path, error, created = None, None, None
    if dist.is_lead:
        try:
            created = new_run(config)  # locked by this process
            path = str(created.path)
        except VaekitError as exc:
            error = (type(exc), str(exc))
    path, error = dist.from_lead((path, error))
    if error is not None:
        raise error[0](error[1])
    return created or Run(Path(path))


def plugin_versions() -> dict[str, dict[str, str]]:
    """The third-party plugins loaded now, with their distributions and versions."""
    return {
        name: {"distribution": info.distribution, "version": info.version}
        for name, info in get_plugin_host().plugins.items()
        if not info.builtin and info.status == "ok"
    }


def restore(session: Session, state: dict[str, Any]) -> None:
    """Continue from a checkpoint: optimisers, epoch, step, metrics and RNG state."""
    states = {MAIN_GROUP: state["optimizer"], **state.get("extra_optimizers", {})}
    for name, optimizer in session.optimizers.items():
        optimizer.load_state_dict(states[name])
    session.start_epoch, session.step = int(state["epoch"]), int(state["step"])
    session.history = session.run.read_metrics()[: session.start_epoch]
    session.rollbacks = int(state.get("rollbacks", 0))
    session.best_val = float(state.get("best_val", math.inf))
    session.best_epoch = int(state.get("best_epoch", 0))
    session.step_log = [r for r in read_steps(session.run) if r.get("step", 0) <= session.step]
    restore_scaler(session, state)
    torch.set_rng_state(state["rng"])


def restore_scaler(session: Session, state: dict[str, Any]) -> None:
    """The gradient scaler's scale and growth count as ``state`` saved them (a checkpoint
    without them, or a run without a scaler, keeps the scaler as it is)."""
    if session.scaler is not None and state.get("scaler"):
        session.scaler.load_state_dict(state["scaler"])


def checkpoint_state(session: Session, epoch: int) -> dict[str, Any]:
    """Everything a resume (or a roll-back) needs, as tensors and plain containers."""
    raw = session.raw_model
    return {
        "model": raw.state_dict(),
        "optimizer": session.optimizers[MAIN_GROUP].state_dict(),
        "extra_optimizers": {
            name: opt.state_dict() for name, opt in session.optimizers.items() if name != MAIN_GROUP
        },
        "epoch": epoch,
        "step": session.step,
        "schedule_steps": session.schedule_steps,
        "rollbacks": session.rollbacks,
        "best_val": session.best_val,
        "best_epoch": session.best_epoch,
        "rng": torch.get_rng_state(),
        "scaler": None if session.scaler is None else session.scaler.state_dict(),
    }


def snapshot(session: Session) -> dict[str, Any]:
    """An in-memory copy of the current state to roll back to."""
    return copy.deepcopy(checkpoint_state(session, session.start_epoch))


def roll_back(session: Session, why: str) -> int:
    """Return to the last good state with the learning rate halved; returns the epoch to
    run next. Past ``max_rollbacks`` stop with a message that says what to change."""
    config = session.config
    if session.rollbacks >= config.max_rollbacks:
        good = int(session.good_state["epoch"])
        kept = (
            f"; the checkpoint of epoch {good} in {session.run.path} is intact and loadable"
            if good > 0
            else ""
        )
        raise VaekitError(
            f"training diverged ({why}) and {session.rollbacks} roll-backs with a halved "
            f"learning rate did not help: train again with a lower --lr (now {config.lr:g}) "
            f"or a larger --batch-size{kept}"
        )
    state = copy.deepcopy(session.good_state)
    session.raw_model.load_state_dict(state["model"])
    states = {MAIN_GROUP: state["optimizer"], **state["extra_optimizers"]}
    for name, optimizer in session.optimizers.items():
        halved = [group["lr"] * 0.5 for group in optimizer.param_groups]  # halves add up
        optimizer.load_state_dict(states[name])
        for group, lr in zip(optimizer.param_groups, halved, strict=True):
            group["lr"] = lr
    session.step = int(state["step"])
    session.history = session.history[: int(state["epoch"])]
    session.step_log = [r for r in session.step_log if r.get("step", 0) <= session.step]
    restore_scaler(session, state)
    torch.set_rng_state(state["rng"])
    session.rollbacks += 1
    lr = session.optimizers[MAIN_GROUP].param_groups[0]["lr"]
    warnings.warn(
        f"{why}: rolled back to epoch {state['epoch']} with the learning rate halved "
        f"to {lr:g} (roll-back {session.rollbacks} of at most {config.max_rollbacks})",
        TrainingWarning,
        stacklevel=2,
    )
    return int(state["epoch"])


class TrainingWarning(UserWarning):
    """Training recovered from a fault (a roll-back); the CLI prints it as one line."""


# -- one epoch -----------------------------------------------------------------------------


def train_epoch(session: Session, epoch: int, reporter: Reporter | None) -> dict[str, Any]:
    """One pass over the training split; returns the epoch's mean metrics."""
    config, model, device = session.config, session.model, session.accelerator.device
    model.train()
    # loss, recon, kl summed over good steps, then the number of good, skipped (faults) and
    # overflow (the gradient scaler's) steps
    sums = torch.zeros(6, device=device)
    # the extra parameter groups' losses (a discriminator's), summed over good steps
    extra_sums = {name: torch.zeros((), device=device) for name in session.groups}
    extra_sums.pop(MAIN_GROUP, None)
    steps = StepTerms(extra_sums, device)
    n_batches, log_samples = 0, 0
    t_epoch = t_log = time.perf_counter()
    beta = 0.0
    batches = session.batches.epoch(
        config.batch_size,
        shuffle=True,
        seed=config.seed + epoch,
        rank=session.dist.rank,
        world_size=session.dist.world_size,
    )
    for x, y in batches:
        beta = session.schedule(session.step, epoch)
        y_in = one_hot_labels(y, session.num_classes)
        with session.accelerator.autocast():
            objective = model(x, y_in, beta=beta, free_bits=config.free_bits)
        good, overflow = optimise(session, objective)
        steps.add(objective, good, overflow)
        session.step += 1
        n_batches += 1
        log_samples += len(x)
        if len(steps) == LOG_EVERY or n_batches == session.steps_per_epoch:
            logged = steps.flush()
            sums += logged
            values = torch.cat([logged, sums[4:5]]).tolist()  # the only host sync of the loop
            check_skipped(session, int(values[6]), epoch)
            values = [v / max(values[3], 1) for v in values[:3]]
            now = time.perf_counter()
            row = {
                "loss": values[0],
                "recon": values[1],
                "kl": values[2],
                "beta": beta,
                "samples_per_s": log_samples / max(now - t_log, 1e-9),
                "epoch": epoch + 1,
            }
            session.step_log.append({"step": session.step, **row})
            if reporter:
                reporter.update(session.step, row)
            t_log, log_samples = now, 0
    sums += steps.flush()  # steps past the last log point (none unless the batches ran short)
    session.accelerator.synchronize()
    train_time = time.perf_counter() - t_epoch
    totals = session.dist.sum_(sums).tolist()  # every process's steps
    if totals[3] == 0:  # nothing learned: never saved as an epoch, whatever the limits say
        raise Diverged(
            f"every step of epoch {epoch + 1} was skipped ({int(totals[4])} with a non-finite "
            f"loss or gradient, {int(totals[5])} overflowed)"
        )
    mean = [v / max(totals[3], 1) for v in totals[:3]]
    metrics = {
        "epoch": epoch + 1,
        "step": session.step,
        "loss": mean[0],
        "recon": mean[1],
        "kl": mean[2],
        "skipped_steps": int(totals[4] / session.dist.world_size),
        "rollbacks": session.rollbacks,
        "beta": session.schedule(max(session.step - 1, 0), epoch),
        "samples_per_s": len(session.batches) / max(train_time, 1e-9),
        "epoch_seconds": train_time,
    }
    for name, total in extra_sums.items():  # e.g. discriminator_loss
        metrics[f"{name}_loss"] = session.dist.sum_(total).item() / max(totals[3], 1)
    if session.scaler is not None:
        metrics["overflow_steps"] = int(totals[5] / session.dist.world_size)
        metrics["grad_scale"] = session.scaler.get_scale()
    return metrics


class StepTerms:
    """The training steps' figures since the last log point, summed in a few operations
    when asked (:meth:`flush`) rather than a dozen small ones per step: on the CPU those
    cost about 0.2 ms of a 13 ms mlp step (docs/benchmarks.md)."""

    def __init__(self, extra_sums: dict[str, torch.Tensor], device: torch.device):
        self.extra_sums = extra_sums  # the extra groups' losses over good steps, added to
        self.device = device
        self.steps: list[tuple[Objective, torch.Tensor, torch.Tensor]] = []

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, objective: Objective, good: torch.Tensor, overflow: torch.Tensor) -> None:
        """One step: its objective (detached) and :func:`optimise`'s flags."""
        kept = objective._replace(
            loss=objective.loss.detach(),
            recon_nll=objective.recon_nll.detach(),
            kl=objective.kl.detach(),
            extra={name: objective.extra[name].detach() for name in self.extra_sums},
        )
        self.steps.append((kept, good, overflow))

    def flush(self) -> torch.Tensor:
        """(6,): loss, recon and kl (each the step's mean over its batch) summed over the
        good steps, then the numbers of good, skipped and overflowed steps; and the extra
        groups' losses over the good steps added to ``extra_sums``. Then forgets them."""
        if not self.steps:
            return torch.zeros(6, device=self.device)
        objectives = [step[0] for step in self.steps]
        good = torch.stack([step[1] for step in self.steps])
        overflow = torch.stack([step[2] for step in self.steps])
        per_step = torch.stack(
            [
                torch.stack([o.loss for o in objectives]).float(),
                batch_means([o.recon_nll for o in objectives]),
                batch_means([o.kl for o in objectives]),
            ]
        )
        ok = good.float()
        counts = torch.stack([ok.sum(), (1 - ok).sum(), overflow.float().sum()])
        for name, total in self.extra_sums.items():
            extra = torch.stack([o.extra[name] for o in objectives]).float()
            total += torch.where(good, extra, 0.0).sum()
        self.steps.clear()
        return torch.cat([torch.where(good, per_step, 0.0).sum(1), counts])


def batch_means(values: list[torch.Tensor]) -> torch.Tensor:
    """(n,) the mean of each of ``values`` (1-D tensors, as long as their batches)."""
    if all(v.dim() == 1 for v in values) and len({v.shape[0] for v in values}) == 1:
        return torch.stack(values).float().mean(1)
    return torch.stack([v.float().mean() for v in values])  # a short last batch, or scalars


def optimise(session: Session, objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step per parameter group: the objective's loss over the model's
    parameters, each extra group's loss over that group's only. A step whose losses or
    gradients are not finite is skipped on the device. Returns two 0-dim bool tensors (not
    synced): whether the step was good (else it counts toward the roll-back limit), and
    whether the gradient scaler skipped it for overflowing gradients (good, not taken)."""
    scaler = session.scaler
    for optimizer in session.optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    if len(session.groups) == 1:
        losses = {MAIN_GROUP: objective.loss}
    else:
        extra = objective.extra or {}
        losses = {}
        for name in session.groups:
            losses[name] = objective.loss if name == MAIN_GROUP else extra.get(name)
            if losses[name] is None:
                raise ContractError(
                    f"model '{session.run_config.model.kind}' declares parameter group "
                    f"'{name}' but its objective has no extra['{name}'] loss"
                )
    for name, loss in losses.items():
        scaled = loss if scaler is None else scaler.scale(loss)
        if len(losses) == 1:
            scaled.backward()
        else:
            scaled.backward(inputs=session.groups[name])
    if scaler is not None:
        # compared now: update() changes the scale tensor in place (a private accessor, but
        # the public get_scale() syncs with the host)
        scale_at_least_one = scaler._get_scale_async() >= 1.0
        for optimizer in session.optimizers.values():
            scaler.unscale_(optimizer)  # clip and check the true gradients
    if steps_on_host(session):
        return _step_on_host(session, losses)
    clip = session.config.grad_clip
    if len(losses) == 1:
        loss_finite = torch.isfinite(objective.loss.detach())
    else:
        stacked = torch.stack([v.detach().float() for v in losses.values()])
        loss_finite = torch.isfinite(stacked).all()
    # One read of the gradients per group, their norm, serves both the finiteness check and
    # clipping: the clip is fused into the optimiser (fused Adam divides the gradients by
    # grad_scale = max(1, norm / clip) as it reads them), so no pass rescales them first.
    norms = {name: gradient_norm(params) for name, params in session.groups.items()}
    if len(norms) == 1:
        grads_finite = torch.isfinite(next(iter(norms.values())))
    else:
        grads_finite = torch.isfinite(torch.stack(list(norms.values()))).all()
    taken = loss_finite & grads_finite
    skip = (~taken).float()
    for name, optimizer in session.optimizers.items():
        optimizer.found_inf = skip  # fused Adam leaves parameters and moments untouched
        optimizer.grad_scale = norms[name].div(clip).clamp_(min=1.0) if clip else None
        optimizer.step()
    if scaler is None:
        return taken, torch.zeros_like(taken)
    scaler.update()  # halves the scale after non-finite gradients, else grows it in time
    overflow = loss_finite & ~grads_finite & scale_at_least_one
    return taken | overflow, overflow


def steps_on_host(session: Session) -> bool:
    """Whether :func:`optimise` decides on the host: on the CPU without a gradient scaler,
    where a step's values are ready when read. Elsewhere (an accelerator's queue, fp16's
    scaler) it decides on the device, without waiting."""
    return session.scaler is None and session.accelerator.device.type == "cpu"


def _step_on_host(
    session: Session, losses: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`optimise`'s checks and steps decided on the host, where reading a value costs
    no wait (the CPU runs each operation as it is called): a step with a non-finite loss or
    gradient norm is not taken at all, and a finite one is taken with neither ``found_inf``
    nor, while the norm is within the clip, ``grad_scale`` (each an extra read or division
    of every gradient inside fused Adam). The same weights as the device path's."""
    clip = session.config.grad_clip
    norms = [gradient_norm(params).item() for params in session.groups.values()]
    taken = all(math.isfinite(v.item()) for v in losses.values()) and all(
        math.isfinite(norm) for norm in norms
    )
    if taken:
        for name, norm in zip(session.groups, norms, strict=True):
            optimizer = session.optimizers[name]
            optimizer.found_inf = None
            optimizer.grad_scale = torch.tensor(norm / clip) if clip and norm > clip else None
            optimizer.step()
    flag = torch.tensor(taken)
    return flag, torch.zeros_like(flag)


def gradient_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The L2 norm of all of ``params``' gradients (0-dim, not synced): NaN or infinite
    when any gradient is. One read of the gradients (as ``clip_grad_norm_`` computes it,
    without its rescaling pass)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device if params else None)
    if hasattr(torch, "_foreach_norm"):  # one kernel per device and dtype
        per_tensor = torch._foreach_norm(grads)
    else:  # pragma: no cover - torch builds without it
        per_tensor = [torch.linalg.vector_norm(g) for g in grads]
    if any(n.dtype != torch.float32 for n in per_tensor):
        per_tensor = [n.float() for n in per_tensor]
    return torch.linalg.vector_norm(torch.stack(per_tensor))


def check_skipped(session: Session, skipped: int, epoch: int) -> None:
    """Roll back (raise :class:`Diverged`) when this epoch skipped too many steps."""
    if skipped > session.config.max_skipped_steps:
        raise Diverged(
            f"{skipped} steps with a non-finite loss or gradient in epoch {epoch + 1} "
            f"(at most {session.config.max_skipped_steps} are skipped)"
        )


def check_epoch(session: Session, metrics: dict[str, Any]) -> None:
    """Roll back (raise :class:`Diverged`) rather than save non-finite weights or metrics."""
    weights_finite = all(
        bool(torch.isfinite(t).all())
        for t in session.raw_model.state_dict().values()
        if t.is_floating_point()
    )
    if not weights_finite:
        raise Diverged(f"the weights became non-finite in epoch {metrics['epoch']}")
    for key in ("loss", "val_loss"):
        if key in metrics and not math.isfinite(metrics[key]):
            raise Diverged(
                f"the {key.replace('_', ' ')} became {metrics[key]} in epoch {metrics['epoch']}"
            )


def patience_exhausted(session: Session, epoch: int) -> bool:
    """With ``patience``: whether the validation -ELBO has not improved for that many epochs."""
    patience = session.config.patience
    return patience is not None and epoch - session.best_epoch >= patience


@torch.no_grad()
def validation_neg_elbo(session: Session) -> float:
    """Mean -ELBO (beta = 1, one posterior sample) over the validation split, in eval mode."""
    model = session.raw_model
    model.eval()
    total = torch.zeros((), device=session.accelerator.device)
    assert session.val_batches is not None
    for x, y in session.val_batches.epoch(session.config.batch_size, shuffle=False):
        y_in = one_hot_labels(y, session.num_classes)
        with session.accelerator.autocast():
            total += model.elbo(x, y_in).neg_elbo.sum()
    model.train()
    return total.item() / len(session.val_batches)


# -- checkpoint ----------------------------------------------------------------------------


def save_epoch(session: Session, metrics: dict[str, Any]) -> None:
    """Weights, checkpoint and metrics of the epoch just trained, committed together
    (:meth:`Run.commit_epoch`); ``latest`` moves to a new run once it holds a loadable model."""
    session.history.append(metrics)
    raw = session.raw_model
    raw.eval()
    run = session.run
    val = metrics.get("val_loss", metrics["loss"])
    improved = val < session.best_val
    if improved:
        session.best_val, session.best_epoch = val, metrics["epoch"]
    metrics["best_epoch"] = session.best_epoch
    state = checkpoint_state(session, metrics["epoch"])
    session.good_state = copy.deepcopy(state)
    if not session.lead:
        return
    # with patience, the weights stay the best epoch's
    keep = session.config.patience is None or improved
    run.commit_epoch(
        metrics["epoch"], state, session.history, session.step_log, raw if keep else None
    )
    if not session.resumed and metrics["epoch"] == session.start_epoch + 1:
        point_latest(run)


def finish(session: Session) -> None:
    """The fitted prior (unconditional models, ``fit_prior`` > 0), then the grids of the
    trained model: samples (from the fitted prior when there is one) and reconstructions."""
    fitted = write_fitted_prior(session)
    write_grids(
        session.raw_model,
        session.run,
        session.grid_data,
        session.accelerator.device,
        num_classes=session.num_classes,
        seed=session.config.seed,
        fitted=fitted,
    )


def write_fitted_prior(session: Session) -> Any:
    """Fit the mixture :mod:`vaekit.fitted_prior` describes to the posteriors of the
    training images under the saved weights, and write it into the run: one (a Cluster)
    for an unconditional model, one per class (a dict by class id) for a conditional
    one; None when the config asks for none."""
    from safetensors.torch import load_file

    from vaekit import fitted_prior as fp

    components = session.config.fit_prior_components
    run = session.run
    path = fp.fitted_prior_path(run.path)
    path.unlink(missing_ok=True)  # a resumed run that asks for none keeps no stale fit
    fp.remove_class_priors(run.path)
    if components <= 0:
        return None
    model = session.raw_model
    if session.config.patience is not None:  # the saved weights are the best epoch's
        model = copy.deepcopy(model)
        model.load_state_dict(load_file(str(run.weights_path)))
    mu, logvar, labels = fp.encode_batches(model, session.batches, session.num_classes)
    recorded = {"run_dir": str(run.path), "weights_sha256": file_sha256(run.weights_path)}
    seed = session.config.seed
    if session.num_classes:
        if labels is None:
            return None
        fits = fp.fit_class_priors(
            mu,
            logvar,
            labels,
            session.run_config.class_names or [str(c) for c in range(session.num_classes)],
            components=min(components, fp.CLASS_COMPONENTS),
            seed=seed,
            model=recorded,
        )
        fp.save_class_priors(run.path, fits)
        return fits or None
    fitted = fp.fit_prior(mu, logvar, components=components, seed=seed, model=recorded)
    if fitted is None:  # too few training images to fit anything
        return None
    fitted.save(path)
    return fitted


@torch.no_grad()
def write_grids(
    model: torch.nn.Module,
    run: Run,
    data: ImageDataset,
    device: torch.device,
    num_classes: int = 0,
    seed: int = 0,
    n: int = 64,
    fitted: Any = None,
) -> None:
    """samples.png (draws from ``fitted``, a fitted prior, when given, else from the
    model's prior) and reconstructions.png (originals above their reconstructions);
    ``num_classes`` > 0 for a class-conditional model."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    y = one_hot_labels(torch.arange(n) % max(num_classes, 1), num_classes)  # classes in turn
    y = None if y is None else y.to(device)
    if isinstance(fitted, dict):  # one fit per class: each row drawn from its class's
        from vaekit.fitted_prior import draw_per_class

        z = sample_prior(model.prior, n, generator, y=y).cpu().numpy()
        ids = np.arange(n) % max(num_classes, 1)
        z = torch.from_numpy(draw_per_class(fitted, z, ids, seed)).to(device)
    elif fitted is not None:
        z = torch.from_numpy(fitted.sample(n, seed)).to(device)
    else:
        z = sample_prior(model.prior, n, generator, y=y)
    save_grid(to_uint8(mean_image(model, z, y)), run.file(SAMPLES), ncol=8)
    k = min(8, len(data))
    x = torch.from_numpy(data.images[:k]).to(device).float() / 255.0
    labels = None if data.labels is None else torch.from_numpy(data.labels[:k])
    y = one_hot_labels(labels, num_classes)
    y = None if y is None else y.to(device)
    recon = mean_image(model, model.posterior(x, y).mean, y)
    save_grid(to_uint8(torch.cat([x, recon])), run.file(RECONSTRUCTIONS), ncol=k)
