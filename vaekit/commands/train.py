"""`vaekit train`: train a VAE (flags, or a config file)."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from vaekit.commands.common import OptList, console, err_console, user_errors
from vaekit.config import MAX_SEED


def _shown_default(field: str) -> str:
    """``[default: VALUE]`` for an option's help, escaped: rich would read the brackets as
    markup and drop them."""
    return f"\\[default: {_default(field)}]"


def _default(field: str) -> Any:
    """The default of a training setting, declared once in :mod:`vaekit.config`."""
    from vaekit.config import ModelConfig, TrainConfig

    for cls in (TrainConfig, ModelConfig):
        for f in dataclasses.fields(cls):
            if f.name == field:
                return f.default
    raise KeyError(field)


def train(
    data: Annotated[
        str | None, typer.Argument(help="Image folder or data file; none: the embedded digits.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset plugin to read DATA with (default: detected).")
    ] = None,
    dataset_opt: OptList = None,
    image_size: Annotated[
        int | None, typer.Option(help="Resize + centre-crop images to this square size.")
    ] = None,
    channels: Annotated[int | None, typer.Option(help="Convert images to 1 or 3 channels.")] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip unreadable images (and report how many).")
    ] = False,
    val_fraction: Annotated[
        float | None,
        typer.Option(help=f"Share of training images held out {_shown_default('val_fraction')}."),
    ] = None,
    model_kind: Annotated[
        str | None,
        typer.Option(help=f"Model kind: vae, cvae, or a plugin's {_shown_default('kind')}."),
    ] = None,
    model_opt: OptList = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            help=f"Encoder: mlp, conv, resnet, or a plugin's {_shown_default('encoder')}."
        ),
    ] = None,
    encoder_opt: OptList = None,
    decoder: Annotated[
        str | None, typer.Option(help="Decoder (default: the encoder's family).")
    ] = None,
    decoder_opt: OptList = None,
    likelihood: Annotated[
        str | None,
        typer.Option(
            help="Likelihood p(x|z): gaussian, bernoulli, laplace, or a plugin's "
            f"{_shown_default('likelihood')}."
        ),
    ] = None,
    likelihood_opt: OptList = None,
    prior: Annotated[
        str | None, typer.Option(help=f"Prior p(z) {_shown_default('prior')}.")
    ] = None,
    prior_opt: OptList = None,
    latent_dim: Annotated[
        int | None,
        typer.Option("--latent-dim", "-z", help=f"Latent size {_shown_default('latent_dim')}."),
    ] = None,
    kl_schedule: Annotated[
        str | None,
        typer.Option(
            help="KL weight schedule: constant, warmup, sigmoid, cyclical "
            f"{_shown_default('kl_schedule')}."
        ),
    ] = None,
    kl_opt: OptList = None,
    free_bits: Annotated[
        float | None,
        typer.Option(help="KL floor in nats per latent dimension \\[default: 0, off]."),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help=f"Training epochs \\[default: {_default('epochs')}; with --resume: the run's own]."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help=f"Batch size {_shown_default('batch_size')}.")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help=f"Adam learning rate {_shown_default('lr')}.")
    ] = None,
    grad_clip: Annotated[
        float | None,
        typer.Option(
            help=f"Clip the gradient norm at this value (0: off) {_shown_default('grad_clip')}."
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop when the validation -ELBO has not improved for N epochs; "
            "keep the best weights."
        ),
    ] = None,
    max_skipped_steps: Annotated[
        int | None,
        typer.Option(
            help="Non-finite steps skipped per epoch before rolling back "
            f"{_shown_default('max_skipped_steps')}."
        ),
    ] = None,
    max_rollbacks: Annotated[
        int | None,
        typer.Option(
            help="Roll-backs (learning rate halved) before giving up "
            f"{_shown_default('max_rollbacks')}."
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_SEED,
            help=f"Random seed (data split, init, noise) {_shown_default('seed')}.",
        ),
    ] = None,
    accelerator: Annotated[
        str | None,
        typer.Option(
            help=f"Where to train: auto, cpu, cuda, or a plugin's {_shown_default('accelerator')}."
        ),
    ] = None,
    accelerator_opt: OptList = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option(help=f"Folder that holds run directories {_shown_default('runs_dir')}."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Run name (default: timestamp and encoder).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue run --name (default: latest) from its checkpoint.")
    ] = False,
    logger: Annotated[
        list[str] | None,
        typer.Option(help="Also log to: tensorboard (needs the tensorboard package). Repeatable."),
    ] = None,
    figures: Annotated[
        bool | None,
        typer.Option(help="Draw the run's pictures into RUN/figures/ at the end \\[default: on]."),
    ] = None,
    fit_prior: Annotated[
        int | None,
        typer.Option(
            help="Fit a mixture of this many Gaussians to the training latents at the end; "
            "`sample` draws from it (0: none, sample from p(z)) \\[default: 25 with the "
            "normal prior, 0 with any other].",
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Read the settings from this TOML file (flags given here override it); "
            "a run's own config.toml trains the same model again.",
        ),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option(
            "--print-config",
            help="Print the resolved settings (file, flags and every default) as TOML, "
            "and exit without training.",
        ),
    ] = False,
) -> None:
    """Train a VAE; leaves runs/<name>/ with the model, config, metrics and grids."""
    with user_errors():
        import os

        if accelerator == "cuda":  # a machine with no GPU driver: refused before torch loads
            from vaekit.builtin.accelerators import gpu_driver_present, not_available

            if not gpu_driver_present():
                raise not_available("cuda")

        from vaekit.config import TrainConfig
        from vaekit.options import parse_options
        from vaekit.progress import RichTrainReporter
        from vaekit.train import train as run_training

        given: dict[str, Any] = dict(
            data=data,
            dataset=dataset,
            image_size=image_size,
            channels=channels,
            val_fraction=val_fraction,
            kind=model_kind,
            encoder=encoder,
            decoder=decoder,
            likelihood=likelihood,
            prior=prior,
            latent_dim=latent_dim,
            kl_schedule=kl_schedule,
            free_bits=free_bits,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            grad_clip=grad_clip,
            patience=patience,
            max_skipped_steps=max_skipped_steps,
            max_rollbacks=max_rollbacks,
            seed=seed,
            accelerator=accelerator,
            runs_dir=None if runs_dir is None else str(runs_dir),
            name=name,
            loggers=list(logger) if logger else None,
            figures=figures,
            fit_prior=fit_prior,
        )
        for key, pairs, flag in (
            ("dataset_options", dataset_opt, "--dataset-opt"),
            ("kind_options", model_opt, "--model-opt"),
            ("encoder_options", encoder_opt, "--encoder-opt"),
            ("decoder_options", decoder_opt, "--decoder-opt"),
            ("likelihood_options", likelihood_opt, "--likelihood-opt"),
            ("prior_options", prior_opt, "--prior-opt"),
            ("kl_schedule_options", kl_opt, "--kl-opt"),
            ("accelerator_options", accelerator_opt, "--accelerator-opt"),
        ):
            if pairs:
                given[key] = parse_options(pairs, flag)
        if skip_bad:
            given["skip_bad"] = True
        settings = {key: value for key, value in given.items() if value is not None}
        if resume and (config_file is not None or print_config):
            from vaekit.errors import UsageError

            raise UsageError(
                "--resume continues a run with its saved settings (RUN/config.toml); "
                "leave out --config and --print-config"
            )
        if resume:
            check_resume_options(settings)
            settings.setdefault("epochs", 0)  # 0: the run's own count
        if config_file is not None:
            from vaekit.train import config_from_file

            config = config_from_file(config_file, settings)
        else:
            config = TrainConfig.build(**settings)
        if print_config:
            from vaekit.config_file import config_toml
            from vaekit.train import plugin_versions, resolved_config, validate_components
            from vaekit.version import __version__

            validate_components(config)
            resolved = resolved_config(config)
            typer.echo(config_toml(resolved, __version__, plugin_versions()), nl=False)
            return
        result = run_training(config, resume=resume, reporter=RichTrainReporter(err_console))
        if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 talks
            minutes, seconds = divmod(result.seconds, 60)
            console.print(
                f"{result.stopped} in {int(minutes)} min {seconds:.0f} s; "
                f"model (epoch {result.best_epoch}) saved in [bold]{result.run.path}[/]",
                highlight=False,
            )


def check_resume_options(settings: dict[str, Any]) -> None:
    """With ``--resume``: an ``--epochs`` below 1, or an option whose value differs from
    the run's saved one (it could not apply), is a usage error, never silently dropped."""
    from vaekit.config import TrainConfig
    from vaekit.errors import UsageError
    from vaekit.train import RESUME_OPTIONS, changed_settings, find_run_to_resume

    if "epochs" in settings and settings["epochs"] < 1:
        raise UsageError(f"--epochs must be >= 1, got {settings['epochs']}")
    if not set(settings) - RESUME_OPTIONS:
        return
    where = {k: settings[k] for k in ("runs_dir", "name") if k in settings}
    saved = find_run_to_resume(TrainConfig.build(**where)).read_config().train
    changed = changed_settings(saved, settings)
    if changed:
        flags = ", ".join(_flag(key) for key in changed)
        raise UsageError(
            f"--resume continues the run with its saved settings, so {flags} cannot change; "
            "leave them out (--resume takes --epochs), or start a new run with another --name"
        )


def _flag(key: str) -> str:
    """The command-line spelling of a TrainConfig setting."""
    special = {"data": "DATA", "kind": "--model-kind", "kind_options": "--model-opt"}
    if key in special:
        return special[key]
    if key.endswith("_options"):
        stem = {"kl_schedule": "kl"}.get(key[: -len("_options")], key[: -len("_options")])
        return f"--{stem.replace('_', '-')}-opt"
    return f"--{key.replace('_', '-')}"
