"""The training loop: data, model, KL schedule, accelerator, checkpoints, resume.

The hot loop holds the data as one uint8 tensor, converts each batch on the
device, and reads values back to the host (``.item()``) only every
``log_every`` steps; there is no per-sample Python.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import torch

from vaekit import __version__
from vaekit.data import DeviceBatches, ImageDataset, load_dataset
from vaekit.errors import UsageError, VaekitError
from vaekit.images import save_grid, to_uint8
from vaekit.model import VAE, ModelConfig, build_model, one_hot_labels
from vaekit.options import strict_dataclass
from vaekit.plugins import get_plugin_host
from vaekit.runs import (
    LATEST,
    RECONSTRUCTIONS,
    SAMPLES,
    Run,
    point_latest,
    resolve_run,
    unwrap,
)

LOG_EVERY = 10


@dataclass
class TrainConfig:
    """Every setting of a training run; written to config.json as ``train``."""

    data: str | None = None
    dataset: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    channels: int | None = None
    skip_bad: bool = False
    val_fraction: float = 0.1
    model: str = "vae"
    encoder: str = "conv"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    decoder: str | None = None
    decoder_options: dict[str, Any] = field(default_factory=dict)
    likelihood: str = "gaussian"
    likelihood_options: dict[str, Any] = field(default_factory=dict)
    prior: str = "normal"
    prior_options: dict[str, Any] = field(default_factory=dict)
    latent_dim: int = 16
    kl_schedule: str = "warmup"
    kl_schedule_options: dict[str, Any] = field(default_factory=dict)
    free_bits: float = 0.0
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    grad_clip: float = 100.0
    seed: int = 0
    accelerator: str = "auto"
    accelerator_options: dict[str, Any] = field(default_factory=dict)
    runs_dir: str = "runs"
    name: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Strict: a misspelt key is an error naming the known ones."""
        return strict_dataclass(cls, data, "training config")

    def validate(self) -> None:
        """Fail early, before any data is read, on bad numbers or unknown component names."""
        host = get_plugin_host()
        for family, name in (
            ("models", self.model),
            ("encoders", self.encoder),
            ("decoders", self.decoder or self.encoder),
            ("likelihoods", self.likelihood),
            ("priors", self.prior),
            ("kl_schedules", self.kl_schedule),
        ):
            host.get(family, name)
        if self.accelerator != "auto":
            host.get("accelerators", self.accelerator)
        for name, value in (
            ("epochs", self.epochs),
            ("batch size", self.batch_size),
            ("latent size", self.latent_dim),
        ):
            if value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        if not self.lr > 0:
            raise UsageError(f"learning rate must be > 0, got {self.lr}")
        if self.free_bits < 0:
            raise UsageError(f"free bits must be >= 0, got {self.free_bits}")


class Reporter(Protocol):
    """Receives progress from :func:`train` (the CLI shows it with rich)."""

    def start(self, total_steps: int, done_steps: int, run: Run) -> None: ...
    def update(self, step: int, metrics: dict[str, float]) -> None: ...
    def epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...
    def end(self, history: list[dict[str, Any]]) -> None: ...


@dataclass
class TrainResult:
    """What :func:`train` leaves behind."""

    run: Run
    history: list[dict[str, Any]]

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def resolve_accelerator_name(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is available, else ``cpu``; other names unchanged."""
    if name != "auto":
        return name
    cuda = get_plugin_host().registry("accelerators").get("cuda")
    return "cuda" if cuda is not None and cuda.factory.is_available() else "cpu"


def choose_accelerator(name: str, options: dict[str, Any]) -> Any:
    """Build the accelerator ``name`` (``auto``: see :func:`resolve_accelerator_name`)."""
    host = get_plugin_host()
    name = resolve_accelerator_name(name)
    accelerator = host.create("accelerators", name, **options)
    if not accelerator.is_available():
        raise VaekitError(
            f"accelerator '{name}' is not available on this machine; try --accelerator cpu"
        )
    return accelerator


def prepare_data(config: TrainConfig) -> ImageDataset:
    """Load the training data with its splits, as ``config`` describes."""
    data = load_dataset(
        config.data,
        config.dataset,
        image_size=config.image_size,
        channels=config.channels,
        skip_bad=config.skip_bad,
        **config.dataset_options,
    )
    if len(data) == 0:
        raise VaekitError(f"dataset '{data.source}' at {data.location} holds no images")
    return data.with_splits(config.val_fraction, config.seed)


def model_config_for(config: TrainConfig, data: ImageDataset) -> ModelConfig:
    """The model configuration for training ``config`` on ``data``."""
    num_classes = 0
    if config.model != "vae":  # model kinds other than vae may condition on labels
        num_classes = len(data.class_names or [])
    return ModelConfig(
        input_shape=data.image_shape,
        latent_dim=config.latent_dim,
        model=config.model,
        encoder=config.encoder,
        encoder_options=dict(config.encoder_options),
        decoder=config.decoder,
        decoder_options=dict(config.decoder_options),
        likelihood=config.likelihood,
        likelihood_options=dict(config.likelihood_options),
        prior=config.prior,
        prior_options=dict(config.prior_options),
        num_classes=num_classes,
    )


class StopTraining(Exception):  # noqa: N818 -- a signal, not an error
    """Raise from ``vaekit_epoch_end`` to end training after that epoch, as if it were the last."""


def new_run(config: TrainConfig) -> Run:
    """Create ``runs_dir/<name>`` (a timestamped name when none is given)."""
    if config.name == LATEST:
        raise UsageError(f"'{LATEST}' is the link to the newest run; choose another --name")
    name = config.name
    if name is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{config.encoder}"
        name, n = stamp, 1
        while (Path(config.runs_dir) / name).exists():  # two runs started in one second
            n += 1
            name = f"{stamp}-{n}"
    path = Path(config.runs_dir) / name
    if path.exists() and any(path.iterdir()):
        raise UsageError(
            f"run directory '{path}' already exists; pass --resume to continue it "
            "or --name to start another"
        )
    path.mkdir(parents=True, exist_ok=True)
    return Run(path)


def train(
    config: TrainConfig, resume: bool = False, reporter: Reporter | None = None
) -> TrainResult:
    """Train a model as ``config`` says and leave a loadable run directory.

    With ``resume=True`` the run ``config.runs_dir/config.name`` (default: the
    latest) continues from its last checkpoint with its saved settings: weights,
    optimiser, step, epoch, KL schedule and RNG state are restored. Only
    ``config.epochs`` is taken from ``config`` (0 keeps the saved count).
    """
    if resume:
        run = resolve_run(Path(config.runs_dir) / (config.name or LATEST))
        saved = run.read_config()
        epochs = config.epochs
        config = TrainConfig.from_dict(saved["train"])
        config.epochs, started_epochs = epochs or config.epochs, config.epochs
        state = run.load_checkpoint()
    else:
        config.validate()
        started_epochs = config.epochs
        if config.data is not None and Path(config.data).exists():
            config.data = str(Path(config.data).resolve())  # later commands run from anywhere
        run, state = None, None
    host = get_plugin_host()

    torch.manual_seed(config.seed)
    data = prepare_data(config)
    train_data, val_data = data.select_split("train"), data.select_split("val")
    if len(train_data) == 0:
        raise VaekitError("the training split is empty; lower --val-fraction or add images")
    model_config = model_config_for(config, data)
    accelerator = choose_accelerator(config.accelerator, config.accelerator_options)
    model = build_model(model_config)
    if run is None:
        run = new_run(config)

    use_labels = model_config.num_classes > 0  # a plain VAE never moves labels per step
    batches = DeviceBatches(
        train_data.images, accelerator.device, train_data.labels if use_labels else None
    )
    val_batches = (
        DeviceBatches(val_data.images, accelerator.device, val_data.labels if use_labels else None)
        if len(val_data)
        else None
    )
    steps_per_epoch = batches.num_batches(config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    # a resumed run keeps the schedule it started with, even when --epochs grows
    schedule_steps = total_steps
    if state is not None:  # checkpoints of vaekit 0.1.0 before this field: the run's own total
        schedule_steps = int(state.get("schedule_steps", steps_per_epoch * started_epochs))
    schedule = host.create(
        "kl_schedules", config.kl_schedule, schedule_steps, **config.kl_schedule_options
    )

    start_epoch, step, history = 0, 0, []
    if state is not None:
        model.load_state_dict(state["model"])
    model = accelerator.prepare(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        history = run.read_metrics()[:start_epoch]
        torch.set_rng_state(state["rng"])

    full_config = {
        "vaekit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model_config.to_dict(),
        "train": asdict(config),
        "data": data.describe(),
        "plugins": {
            name: {"distribution": info.distribution, "version": info.version}
            for name, info in host.plugins.items()
            if not info.builtin and info.status == "ok"
        },
    }
    run.write_config(full_config)
    host.hook.vaekit_train_start(run=run, config=full_config)
    if reporter:
        reporter.start(total_steps, step, run)

    raw = unwrap(model)
    num_classes = model_config.num_classes
    for epoch in range(start_epoch, config.epochs):
        model.train()
        sums = torch.zeros(3, device=accelerator.device)  # loss, recon, kl (summed per batch)
        logged = torch.zeros(3, device=accelerator.device)
        n_batches, n_logged, log_samples = 0, 0, 0
        t_epoch = t_log = time.perf_counter()
        for x, y in batches.epoch(config.batch_size, shuffle=True, seed=config.seed + epoch):
            beta = schedule(step, epoch)
            y_in = one_hot_labels(y, num_classes)
            with accelerator.autocast():
                terms = model(x, y_in)
            loss = VAE.loss(terms, beta, config.free_bits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            with torch.no_grad():
                batch_terms = torch.stack([loss, terms.recon_nll.mean(), terms.kl.mean()])
                sums += batch_terms
                logged += batch_terms
            step += 1
            n_batches += 1
            n_logged += 1
            log_samples += len(x)
            if n_logged == LOG_EVERY or n_batches == steps_per_epoch:
                values = (logged / n_logged).tolist()  # the only host sync of the loop
                if not math.isfinite(values[0]):
                    kept = (
                        f"; the checkpoint of epoch {epoch} in {run.path} is intact and loadable"
                        if epoch > 0
                        else ""
                    )
                    raise VaekitError(
                        f"the loss became {values[0]} at step {step} (epoch {epoch + 1}): train "
                        f"again with a lower --lr (now {config.lr:g}) or a larger --batch-size"
                        f"{kept}"
                    )
                now = time.perf_counter()
                if reporter:
                    reporter.update(
                        step,
                        {
                            "loss": values[0],
                            "recon": values[1],
                            "kl": values[2],
                            "beta": beta,
                            "samples_per_s": log_samples / max(now - t_log, 1e-9),
                            "epoch": epoch + 1,
                        },
                    )
                logged.zero_()
                t_log, log_samples, n_logged = now, 0, 0
        accelerator.synchronize()
        train_time = time.perf_counter() - t_epoch
        mean = (sums / max(n_batches, 1)).tolist()
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "loss": mean[0],
            "recon": mean[1],
            "kl": mean[2],
            "beta": schedule(max(step - 1, 0), epoch),
            "samples_per_s": len(train_data) / max(train_time, 1e-9),
            "epoch_seconds": train_time,
        }
        if val_batches is not None:
            metrics["val_loss"] = evaluate_neg_elbo(
                model, val_batches, config.batch_size, num_classes, accelerator
            )
        history.append(metrics)
        raw.eval()
        run.save_weights(raw)
        run.save_checkpoint(
            {
                "model": raw.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "step": step,
                "schedule_steps": schedule_steps,
                "rng": torch.get_rng_state(),
            }
        )
        run.rewrite_metrics(history)
        if not resume and epoch == start_epoch:
            point_latest(run)  # only once the run holds a loadable model
        if reporter:
            reporter.epoch_end(epoch + 1, metrics)
        try:
            host.hook.vaekit_epoch_end(run=run, epoch=epoch + 1, metrics=metrics)
        except StopTraining:
            break

    write_grids(
        raw, run, val_data if len(val_data) else train_data, accelerator.device, seed=config.seed
    )
    host.hook.vaekit_train_end(run=run, metrics=history[-1] if history else {})
    if reporter:
        reporter.end(history)
    return TrainResult(run, history)


@torch.no_grad()
def evaluate_neg_elbo(
    model: torch.nn.Module,
    batches: DeviceBatches,
    batch_size: int,
    num_classes: int,
    accelerator: Any,
) -> float:
    """Mean -ELBO (beta = 1, one posterior sample) over ``batches``, in eval mode."""
    model.eval()
    total = torch.zeros((), device=accelerator.device)
    for x, y in batches.epoch(batch_size, shuffle=False):
        y_in = one_hot_labels(y, num_classes)
        with accelerator.autocast():
            total += model(x, y_in).neg_elbo.sum()
    model.train()
    return total.item() / len(batches)


@torch.no_grad()
def write_grids(
    model: torch.nn.Module,
    run: Run,
    data: ImageDataset,
    device: torch.device,
    seed: int = 0,
    n: int = 64,
) -> None:
    """samples.png (prior draws) and reconstructions.png (originals above reconstructions)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    num_classes = model.config.num_classes
    z = torch.randn(n, model.latent_dim, generator=generator).to(device)
    y = one_hot_labels(torch.arange(n) % max(num_classes, 1), num_classes)  # classes in turn
    y = None if y is None else y.to(device)
    save_grid(to_uint8(model.decode_mean(z, y)), run.file(SAMPLES), ncol=8)
    k = min(8, len(data))
    x = torch.from_numpy(data.images[:k]).to(device).float() / 255.0
    labels = None if data.labels is None else torch.from_numpy(data.labels[:k])
    y = one_hot_labels(labels, num_classes)
    y = None if y is None else y.to(device)
    mu, _ = model.encode(x, y)
    recon = model.decode_mean(mu, y)
    pairs = torch.cat([x, recon])
    save_grid(to_uint8(pairs), run.file(RECONSTRUCTIONS), ncol=k)
